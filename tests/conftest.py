"""Test-bed fixtures are plugins so every tier can ask for the components it needs."""

pytest_plugins = [
    "tests.testbed.fixtures_services",
    "tests.testbed.fixtures_k8s",
    "tests.testbed.fixtures_scale",
    "tests.testbed.chromium",
    "tests.e2e.backbone",
    # One operator for the whole session: a module that imported these fixtures would get
    # its own "session" instance, and a second operator reconciling the same Visits.
    "tests.e2e.operatorbed",
]
