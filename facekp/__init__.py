"""facekp: facial keypoint detection, a core library (facekp.core), a desktop app (facekp.gui)
and what the app ships (facekp.resources).

The three folders sit at the repository's top (core/, gui/, resources/); pyproject.toml installs
them under this package's name. Run from a checkout without installing (its top folder on
``sys.path``, as ``python -m pytest`` there does), this package also looks for its subpackages
in the folder above it, so that ``facekp.core`` is the same core/ either way.
"""
import os as _os

_top = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_top, "pyproject.toml")) and \
        _os.path.isfile(_os.path.join(_top, "core", "__init__.py")) and _top not in __path__:
    __path__.append(_top)
