"""Text: corpus files (corpus), lyric lines to tokens (tokenizer, the only jieba user), tokens to ids
(vocab), and fetching public corpora (download). Nothing here imports torch."""
