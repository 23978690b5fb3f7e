"""Fleet simulator and the autoscaling baselines it compares fleetpilot against.

baselines/  HPA, Knative KPA, a Dynamo-planner-like predictive policy, static and oracle: pure
            `decide(snapshot, state, cfg) -> (Decision, state)` over the same `ModelSnapshot`
            the live loop builds, so the simulator feeds every policy identically.
"""
