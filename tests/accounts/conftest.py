from tests.e2e.conftest import processes

__all__ = ["processes"]
