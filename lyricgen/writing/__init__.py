"""Writing: choosing the next token (sampling), writing a text token by token under structure
bounds (generate), the loaded-model API (lyricist), the interactive session (session), and what we
measure of a text: its copying from the corpus (originality) and its loops (loops)."""
