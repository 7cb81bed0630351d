-- wrk script: POST /api/visit with a small JSON body.
wrk.method = "POST"
wrk.body = '{"page":"/bench"}'
wrk.headers["Content-Type"] = "application/json"
