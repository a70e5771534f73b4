"""Media detectors: image nudity (NudeNet boxes), an NSFW score (Open NSFW), OCR (Tesseract),
each also reading the sampled frames of videos (PyAV frame sampling and its cache: `video`).

Every detector here reads `Content.media` parts behind the guard rails of `guards` (size,
format, pixels, corrupt data), so a hostile file is an error result, never a crash or a hang.
Their libraries are the optional extra `warden[media]` and are imported only when a policy
uses them. See docs/media.md.
"""
