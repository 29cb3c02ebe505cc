import pytest


def pytest_collection_modifyitems(config, items):
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        skip = pytest.mark.skip(reason="needs the [test] extra (torch, transformers)")
        for item in items:
            if "torch" in item.keywords:
                item.add_marker(skip)
