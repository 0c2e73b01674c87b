"""Stage 2: SASRec, a session retriever and a persona retriever fused per prefix length for session
recommendation.

Modules (import them directly; nothing heavy happens when this package is imported,
torch is only imported by ``sasrec`` / ``retriever`` and inside functions elsewhere):

* :mod:`~kgrec.recommender.data`      item vocabulary, sequences, train windows, eval examples
* :mod:`~kgrec.recommender.protocols` ``session`` and ``loo``: what a model may see (protocol docs)
* :mod:`~kgrec.recommender.recipe`    the one training recipe (train and evaluate both call it)
* :mod:`~kgrec.recommender.metrics`   HR@10/100, NDCG@10, MRR, LT-HR@100, coverage
* :mod:`~kgrec.recommender.sasrec`    ``SASRec`` (CE or gBCE, optional LLM item init)
* :mod:`~kgrec.recommender.retriever` ``PersonaRetriever`` (fusion prefix / gate / none), ``topk``
* :mod:`~kgrec.recommender.fusion`    the one retrieve → fuse → rank kernel and its per-bucket plan
* :mod:`~kgrec.recommender.neighbours` ``UserKNN`` over any user space (the persona probe)
* :mod:`~kgrec.recommender.baselines` ``Popularity``, ``LLMSeqSim``
* :mod:`~kgrec.recommender.training`  shared fit loop (early stopping on validation NDCG@10)
* :mod:`~kgrec.recommender.evaluate`  ``evaluate_all``
* :mod:`~kgrec.recommender.report`    ``write_report``, ``claims_table``
* :mod:`~kgrec.recommender.service`   ``Recommender`` (save / load / recommend)
"""
