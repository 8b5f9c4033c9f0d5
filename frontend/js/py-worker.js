// Runs students' Python on Pyodide, in a module worker (Pyodide refuses classic workers).
// The page terminates this worker when a run exceeds its time limit, so an infinite loop
// never freezes the tab; a fresh worker is started for the next run.
//
// Protocol (JSON strings):
//   page -> worker  {id, code, function, cases: [[arg, ...], ...]}
//   worker -> page  {type: "ready"} | {type: "load_error", message}
//                   {type: "result", id, outcomes: [{status: "returned"|"raised", value}], stdout}
//                   {type: "result", id, error, stdout}   (syntax error, no such function)
import { loadPyodide } from "/pyodide/pyodide.mjs";

const HARNESS = `
import json, math, traceback

def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)

def _where(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<your code>"]
    return f" (line {frames[-1].lineno})" if frames else ""

def _aw_run(code, fname, cases_json):
    ns = {"__name__": "__student__"}
    try:
        exec(compile(code, "<your code>", "exec"), ns)
    except SyntaxError as e:
        return json.dumps({"error": f"SyntaxError: {e.msg} (line {e.lineno})"})
    except Exception as e:
        return json.dumps({"error": f"{type(e).__name__}: {e}{_where(e)}"})
    f = ns.get(fname)
    if not callable(f):
        return json.dumps({"error": f"your code must define a function named {fname}"})
    outcomes = []
    for args in json.loads(cases_json):
        try:
            outcomes.append({"status": "returned", "value": _plain(f(*args))})
        except Exception as e:
            outcomes.append({"status": "raised", "value": f"{type(e).__name__}: {e}{_where(e)}"})
    return json.dumps({"outcomes": outcomes})
`;

let stdout = [];
const MAX_STDOUT = 4000;

const ready = (async () => {
  const pyodide = await loadPyodide({ indexURL: "/pyodide/" });
  const grab = (s) => {
    if (stdout.join("\n").length < MAX_STDOUT) stdout.push(s);
  };
  pyodide.setStdout({ batched: grab });
  pyodide.setStderr({ batched: grab });
  pyodide.runPython(HARNESS);
  return pyodide;
})();

ready.then(
  () => postMessage(JSON.stringify({ type: "ready" })),
  (e) => postMessage(JSON.stringify({ type: "load_error", message: String(e) })),
);

onmessage = async (event) => {
  const req = JSON.parse(event.data);
  const pyodide = await ready;
  stdout = [];
  const run = pyodide.globals.get("_aw_run");
  let reply;
  try {
    reply = JSON.parse(run(req.code, req.function, JSON.stringify(req.cases)));
  } catch (e) {
    reply = { error: String(e) };
  }
  run.destroy();
  postMessage(JSON.stringify({ type: "result", id: req.id, stdout: stdout.join("\n"), ...reply }));
};
