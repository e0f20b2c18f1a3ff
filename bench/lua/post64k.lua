-- wrk script for the echo scenario: every request is a POST of a 64 KiB body.
-- wrk adds the Content-Length header itself from wrk.body.
wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
