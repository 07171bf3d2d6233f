"""The serving benchmark: voicestack on Ray Serve against what a user would run instead.

The same voice is served several ways on one machine, one after another in one run, and driven by
the same concurrent streaming clients, so the numbers compare like with like:

- ``naive``: a plain ASGI app that synthesizes the whole text, then returns it;
- ``streaming``: the same ASGI app streaming the local runtime's chunks as they are made;
- ``voicestack``: the real service on Ray Serve;
- with a Piper voice (``--voice joe``), Piper's own engine: ``piper-stream`` (sentence by
  sentence, ``piper_server.py``) and ``piper-http`` (``python -m piper.http_server``).

``bench/serve_bench.py`` is the entry point; ``run.py`` orchestrates (``open_loop.py`` the
Poisson arrivals and the capacity found from them), ``servers.py`` holds the two
plain ASGI servers, ``piper_server.py`` the streaming Piper one, ``launch.py`` starts and stops
them all, ``client.py`` drives them (in voicestack's API, or Piper's server's), ``sampler.py``
watches their memory and CPU, ``report.py`` and ``plot.py`` turn records into results and
``goals.py`` checks the goals.
"""
