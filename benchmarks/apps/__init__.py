"""The same minimal app for each server the comparison runs, and the launcher that starts them.

Routes, identical everywhere: ``GET /`` (13-byte ``Hello, world!``), ``GET /users/{id}`` (JSON
with the path parameter), ``GET /bytes/64k`` and ``GET /bytes/1m`` (downloads from memory),
``POST /upload`` (reads the body as a stream, answers with its size).
"""
