"""Sieve's orchestration. The CLIs `run` (the whole job) and `refilter` (re-decide from stored
signals), `config` (the YAML schema), `runtime` (the only module that talks to Ray), `storage`
(local / s3 / https files), and the subpackages `inputs`, `stages`, `tokens`, `report`, `sample`.
The per-document logic lives in `filters/`, which never imports this package.
"""
