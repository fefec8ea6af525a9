"""One case, one file (一案一档): the case file as a signed BagIt package, retention and legal holds."""
