"""The corpora read from a data directory, one module each, with their loaders.

Expected layout, relative to the data directory (``--data-dir``, ``$JAXATTN_DATA``; see
``shared/data/README.md`` for provenance and counts)::

  sst2/{train,dev,test}.tsv                 label<TAB>text, PTB-tokenised, lower-cased
  20news_sports/{train,test}.jsonl          {"text", "label", "group", "id"}, raw posts
  ag_news/test.csv                          "class_index","title","description" (no header)
  snli/{dev,test}.jsonl                     {"premise", "hypothesis", "label", ...}
  babi/en-10k/qa{N}_*_{train,test}.txt      bAbI v1.2 (babi/en/ holds the 1k versions)
  eraser_movies/{train,val,test}.jsonl      ERASER annotations; docs/<docid> the reviews

Every parser checks what it reads through :mod:`jaxattn.data.files`: a malformed line raises
:class:`DataError` as ``path:line: what`` (a bAbI line without its number among them), a missing
file :class:`MissingDataError` naming the path looked for.

Empty texts: a text field that is empty in the file is a malformed line (error). Texts emptied by
a loader's own processing (20 Newsgroups posts that are all header, quote and signature) are
dropped and counted in the data set's notes. Labels outside the data set's label set are always
an error; the one exception is SNLI's documented ``-`` (no gold label), skipped and counted as
every SNLI study does.
"""
