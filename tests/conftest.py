"""Test-bed fixtures are plugins so every tier can ask for the components it needs."""

pytest_plugins = [
    "tests.testbed.fixtures_services",
    "tests.testbed.fixtures_k8s",
    "tests.e2e.backbone",
]
