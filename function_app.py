"""The Functions app: registers the blueprints and nothing else (importing it opens no connection)."""
import azure.functions as func

from exports.functions import connections, exports, openapi, queues, runs, timer
from exports.startup import configure_process

configure_process()
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (connections.bp, exports.bp, runs.bp, openapi.bp, timer.bp, queues.bp):
    app.register_functions(blueprint)
