"""Serving the champion: the scorer shared with the pyfunc (``topk``), the HTTP contract (``schema``),
the service's settings (``config``), micro-batching, the body-size limit, the optional approximate index
(``ann``) and the Bento build (``bento``). ``service.py`` at the top of the repository is the
``@bentoml.service`` and imports from here; nothing below gatrec.cli imports this package.
"""
