"""HTTP gateway in front of the Triton replicas: weighted balancing, admission control,
tier routing, failover, streaming pass-through, admin endpoints and Prometheus metrics.

Module map (the folder is the diagram):
  options.py    RouterOptions (plain dataclass; serving never imports controlplane)
  balancer.py   pure: pick a replica from weights and in-flight counts
  admission.py  pure: admit or shed by priority class and load ratio
  tiers.py      pure: resolve the virtual `classifier` model to a tier
  auth.py       pure: bearer-token check for admin endpoints
  registry.py   replicas from the fleet state file, active health checks, passive ejection
  metrics.py    Prometheus metrics on the router's own registry
  app.py        aiohttp handlers (the hot path)
  server.py     run in the foreground, or as a detached background process; stop it
  bench.py      measure the latency the router adds over direct Triton calls
"""

from serving.router.options import RouterOptions

__all__ = ["RouterOptions"]
