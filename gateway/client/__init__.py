"""A Python client for the gateway's dataset API (docs/developers.md).

from gateway.client import GatewayClient

with GatewayClient.from_file("demo-client.json") as gw:
    frame = gw.to_pandas("residents", purpose="statistics")
"""

from gateway.client.api import GatewayClient, Page, query_params
from gateway.client.errors import ClientError, ProblemError, ReceiptError
from gateway.client.retry import RetryPolicy, retry_after

__all__ = [
    "ClientError",
    "GatewayClient",
    "Page",
    "ProblemError",
    "ReceiptError",
    "RetryPolicy",
    "query_params",
    "retry_after",
]
