"""The data side of picollm: corpora, tokenisation to Parquet, deterministic splits, a fast loader.

Modules, in the order data flows through them (import them directly; this package imports
nothing, so that light users such as the Snakefile do not pay for torch or pyarrow):

* :mod:`~picollm.data.three_seqs`: the course's ``3seqs.txt``, rebuilt exactly;
* :mod:`~picollm.data.synthetic` and :mod:`~picollm.data.story_grammar`: generated corpora with
  a known log-probability per document (so a known entropy floor);
* :mod:`~picollm.data.sources`: TinyStories (Hub, local files, or generated) and text files;
* :mod:`~picollm.data.corpus`: tokenise every source into one Parquet corpus plus a JSON;
* :mod:`~picollm.data.split`: train/test by document, and the memory-mappable token format;
* :mod:`~picollm.data.loader`: deterministic, resumable training batches and evaluation sets.
"""
