"""The Kubernetes half of the test bed: pinned binaries, certificates, control plane, node agent.

Belongs here: building or fetching etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kubectl and helm into ``~/.cache/shutterline/testbed/``; starting the control
plane on loopback; the Python node agent that runs pods as local processes. Must not hold
pytest fixtures (those live in ``tests/testbed/fixtures_k8s.py``) nor the other services.
"""
