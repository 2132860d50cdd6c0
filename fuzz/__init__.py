"""A mutation fuzzer over every `dynforecast ingest` reader (issue 8, section 5).

`python -m fuzz.ingest --seconds 60` mutates seed files of every supported format and runs each
mutant through the CLI's ingest command in a forked child with a timeout; see fuzz/ingest.py.
"""
