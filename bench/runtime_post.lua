-- wrk script: POST the body in $WRK_BODY_FILE as JSON.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open(os.getenv("WRK_BODY_FILE"), "rb")
wrk.body = file:read("*a")
file:close()
