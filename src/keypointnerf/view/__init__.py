"""``keypointnerf view``: look around a result in the browser.

``session``: one subject, frame and set of source views encoded once, rendered from any pinhole camera (the
same ``render_image`` call as ``keypointnerf render``) and exported as ``render`` writes; no browser involved.
``progressive``: a worker thread that renders each client's newest camera coarse to fine and drops work whose
camera has moved. ``app``: the viser page (the capture in 3D, the render behind it, the controls). ``browser``:
screenshots of a page in headless Chromium (tests, the README's picture). ``commands``: the verb.
"""
