"""The tf_bng application: experiment configs -> library objects -> training runs, demo, report.

Installed as ``tf_bng_trainers`` (the source tree's ``trainers/``), next to
the configs as ``tf_bng_configs``; the console script ``tf-bng-train`` is
:func:`train.run`. The library, ``tf_bng``, never imports this package.
"""
