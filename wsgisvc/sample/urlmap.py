"""The paste composite of paste files written before it was public: it is
:mod:`wsgisvc.urlmap` now, which new files name."""

from wsgisvc.urlmap import URLMap, urlmap_factory

__all__ = ["URLMap", "urlmap_factory"]
