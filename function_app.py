"""The Functions app: registers the blueprints and nothing else (importing it opens no connection)."""
import azure.functions as func

from exports import http_manage, http_runs, queue_functions, timer

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http_manage.bp)
app.register_functions(http_runs.bp)
app.register_functions(timer.bp)
app.register_functions(queue_functions.bp)
