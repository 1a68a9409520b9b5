"""Driving a microscope through SerialEM's own ``serialem`` Python module.

``scope`` is the :class:`~acquisition.driver.Microscope` driver; ``client`` calls the module
in a bridge process (``bridge``) with timeouts; ``geometry`` turns image pixels into stage
positions with the matrices SerialEM reports; ``check`` is ``gridpilot scope check``.
Nothing here is imported by the bridge process except ``bridge`` itself, which needs only the
standard library and SerialEM's module.
"""
