"""Build a one-sentence-per-line Korean Wikipedia corpus from a pages-articles dump.

dump: stream pages out of the bz2 XML; markup: wikitext to plain paragraphs; split: sentences;
filters: length/Hangul/dedup keys; build: workers, checkpoints and resume; download: fetch a dump.
"""
