"""Writing: choosing the next token (sampling), writing a text token by token under structure
bounds (generate), a song's plan (form), one line under constraints (lines), a song line by line
(song), the loaded-model API (lyricist), the interactive session (session), loops (loops) and the
report on written songs (report). Copying from the corpus is measured by fitted/originality."""
