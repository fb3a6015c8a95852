"""Autoscaling: how many workers each queue needs to finish its backlog within a target time.

One module per part, each usable on its own:

- metrics.py: `record_completed`, called by every task when it finishes, counts it in Redis per
  queue, per 5-second bucket and per worker, so completion rates and the number of workers doing
  the work can be read back.
- measure.py: `measure` reads, per queue, the depth (messages waiting in the Celery list plus
  messages that workers hold unacknowledged) and the measured rates, as a `QueueObservation`.
- policy.py: `decide`, a pure function of an observation, a `ScalingPolicy` and what it
  remembered from its previous call (`QueueState`), returns a `Decision`: the worker count and a
  one-line reason.
- pool.py: `LocalWorkerPool` starts and stops `curation worker` processes on this machine to
  follow the decisions; loop.py: `Autoscaler` runs measure → decide → apply once per `step`;
  state_file.py: what one run of it leaves for the next.
- keda.py: `keda_manifests` (and `write_manifests`) express the same sizing for Kubernetes: one
  KEDA ScaledObject per queue (see deploy/keda/README.md for what KEDA can and cannot see).
"""
