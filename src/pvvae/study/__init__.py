"""Replication studies: the paper's ablations and analyses as one resumable harness.

* :mod:`pvvae.study.spec`: study files (variants of a recipe, seeds, measurements);
* :mod:`pvvae.study.store`: content-addressed steps, skipped when complete, file-locked;
* :mod:`pvvae.study.pipeline`: the steps of a (variant, seed): VAE stages, latent
  statistics / LTD / prediction, reconstruction, latent cache, Latte, gFVD / KVD;
* :mod:`pvvae.study.report`: tables (paper Tables 4-6), Figures 5a-d and claim verdicts.

Command line: ``pvvae study run|report STUDY.yaml``.
"""

from pvvae.study.spec import StudySpec, Variant, load_study, select

__all__ = ["StudySpec", "Variant", "load_study", "select"]
