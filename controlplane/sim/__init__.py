"""Fleet simulator and the autoscaling baselines it compares fleetpilot against.

workload.py   trace -> arrivals per tick, through the replay's own readers (serving/replay/traces.py)
latency.py    one replica's batching curve; the exact latency mixture of simulated requests
fleet.py      replicas as numpy slots (startup delay, failures, zones) and a FIFO fluid queue
run.py        the tick loop: every policy sees the live loop's ModelSnapshot; fleetpilot is
              decide_replicas itself with a forecaster from controlplane.forecast feeding its floor
metrics.py    SLO attainment, p99, GPU-hours, scale actions
bench.py      `fleetpilot bench autoscale`: six policies, one trace, one fleet
scale.py      `fleetpilot sim scale`: many replicas over a simulated day, sim-s per wall-s
calibrate.py  fit the simulated replica to a real one's profiled latencies (per rate, or
              replayed on a real step's own send times)
baselines/    HPA, Knative KPA, a Dynamo-planner-like predictive policy, static and oracle: pure
              `decide(snapshot, state, cfg) -> (Decision, state)` over the same `ModelSnapshot`
              the live loop builds, so the simulator feeds every policy identically.
"""
