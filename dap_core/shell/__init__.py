"""The imperative shell of dap: everything that waits, reads, writes or talks to the network.

http.py (transport and the retry loop), session.py (token and API calls), download.py (one
part, streamed), sinks.py (atomic files, stdout), writers.py (per format), state.py (the
checkpoint file), client.py (the library's Client), cli.py (the command line).
"""
