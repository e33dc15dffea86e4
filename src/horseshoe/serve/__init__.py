"""`horseshoe serve`: a page on 127.0.0.1 to play with one trained run (sample, edit a drawing, inpaint,
interpolate).

Standard library only (http.server): a local demo should not pull in a web framework. Nothing else in
the package imports this; the command imports it when it runs. Modules: uploads (decoding and limits),
tasks (checked requests -> the work a job runs), jobs (one worker thread, one model call at a time),
server (routes and the HTTP handler), page.html (the page, its script and style inline).
"""
