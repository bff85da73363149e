"""WebFiles: a SPECweb99-like file workload, after the Singularity paper's WebFiles benchmark.

Three processes share nothing and talk only over contract-checked channels:

* ``disk`` (:mod:`webfiles.disk`), a disk driver serving fixed-size blocks of
  an image file it can reach only through a broker capability;
* ``fs`` (:mod:`webfiles.fs`), a file system over those blocks, with a small
  block cache, serving files by name;
* ``client`` (:mod:`webfiles.client`), which reads files chosen as SPECweb99
  chooses them and checks every byte.

``app.toml`` beside this package runs them under any isolation configuration.
"""
