"""An MCP server with one `echo` tool on the official MCP Python SDK, 1.x (FastMCP) or 2.x
(MCPServer), over streamable HTTP at /mcp, for `make test-targets`. Usage: python mcp_echo.py PORT
"""

import sys

port = int(sys.argv[1])

try:
    from mcp.server.mcpserver import MCPServer  # mcp 2.x

    server = MCPServer("echo")
    run = lambda: server.run("streamable-http", host="127.0.0.1", port=port)  # noqa: E731
except ImportError:
    from mcp.server.fastmcp import FastMCP  # mcp 1.x

    server = FastMCP("echo", host="127.0.0.1", port=port, log_level="WARNING")
    run = lambda: server.run(transport="streamable-http")  # noqa: E731


@server.tool()
def echo(text: str) -> str:
    """Echoes its text."""
    return text


if __name__ == "__main__":
    run()
