//! VM scale set run commands and restarts, as Microsoft.Compute serves them for the
//! instances behind AKS nodes.
//!
//! - Action run command: `POST .../virtualMachines/{i}/runCommand` with
//!   `{"commandId":"RunShellScript","script":[...]}`: 202 with `Azure-AsyncOperation` and
//!   `Location` (`...&monitor=true`); the status answers `{"status":"InProgress"}` until the
//!   end, the `Location` 202 until the end then the `RunCommandResult`
//!   `{"value":[{"code":"ProvisioningState/succeeded","message":"Enable succeeded: \n[stdout]\n...\n[stderr]\n..."}]}`.
//!   No exit code: a script's `exit 3` still "succeeded".
//! - Managed run command: `PUT .../runCommands/{name}` (`properties.source.script`,
//!   `asyncExecution`, `timeoutInSeconds`), `GET ...?$expand=instanceView`
//!   (`executionState`, `exitCode`, `output`, `error`), `DELETE`.
//! - `POST .../restart` (an LRO that ends when the machine is back) and `GET .../instanceView`.
//!
//! Scripts run as root in the node's root (`chroot`), for at least `timing.runCommandSeconds`;
//! outputs keep only their last 4,096 bytes; one run command at a time per instance (409).

use super::arm_error;
use crate::events::kinds;
use crate::Shared;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a run command keeps of each output stream.
pub const OUTPUT_TAIL: usize = 4096;
/// The action run command's own limit.
const ACTION_TIMEOUT: Duration = Duration::from_secs(90 * 60);
/// A restart that has not brought the machine back by then fails.
const RESTART_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Op {
    started: String,
    ended: Option<String>,
    /// `InProgress`, `Succeeded`, `Failed` or `Canceled`.
    status: &'static str,
    error: Option<Value>,
    /// What the `Location` URL answers once done (the action's RunCommandResult).
    result: Option<Value>,
}

#[derive(Debug, Clone)]
struct Managed {
    name: String,
    location: String,
    script: String,
    timeout_secs: u64,
    async_execution: bool,
    provisioning: &'static str,
    execution: &'static str,
    exit_code: Option<i32>,
    output: String,
    error: String,
    start: Option<String>,
    end: Option<String>,
    /// Bumped by every PUT, so that a stale run does not overwrite a newer one.
    generation: u64,
}

#[derive(Default)]
struct State {
    ops: HashMap<String, Op>,
    /// Node → name of what runs there now (an action or a managed run command).
    busy: HashMap<String, String>,
    /// (node, lower-cased name) → managed run command.
    managed: HashMap<(String, String), Managed>,
    generation: u64,
}

#[derive(Default)]
pub struct RunCommands {
    st: Mutex<State>,
}

fn now() -> String {
    crate::time::now_rfc3339_millis()
}

/// The last [`OUTPUT_TAIL`] bytes, cut on a character boundary.
pub fn tail(s: &str) -> String {
    if s.len() <= OUTPUT_TAIL {
        return s.to_string();
    }
    let mut start = s.len() - OUTPUT_TAIL;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// Where a request names the emulator's pieces: base URL, subscription, location, api-version.
pub struct Urls {
    pub base: String,
    pub sub: String,
    pub location: String,
    pub api_version: String,
}

impl Urls {
    fn op(&self, id: &str, monitor: bool) -> String {
        format!(
            "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{}/operations/{id}?{}api-version={}",
            self.base,
            self.sub,
            self.location,
            if monitor { "monitor=true&" } else { "" },
            self.api_version
        )
    }
}

fn accepted(status: StatusCode, body: Option<Value>, urls: &Urls, id: &str, location: bool) -> Response {
    let mut r = match body {
        Some(b) => (status, axum::Json(b)).into_response(),
        None => status.into_response(),
    };
    let h = r.headers_mut();
    let mut put = |name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put("azure-asyncoperation", urls.op(id, false));
    if location {
        put("location", urls.op(id, true));
    }
    put("retry-after", "1".into());
    r
}

/// The instance a request is about.
pub struct Target<'a> {
    pub node: &'a str,
    pub linux: bool,
    /// The resource id of the VM (`.../virtualMachines/{i}`).
    pub vm_id: String,
}

impl RunCommands {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_op(&self) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.lock().ops.insert(
            id.clone(),
            Op {
                started: now(),
                ended: None,
                status: "InProgress",
                error: None,
                result: None,
            },
        );
        id
    }

    fn finish(&self, id: &str, status: &'static str, error: Option<Value>, result: Option<Value>) {
        if let Some(o) = self.lock().ops.get_mut(id) {
            o.status = status;
            o.ended = Some(now());
            o.error = error;
            o.result = result;
        }
    }

    /// 409 when something already runs on the node (or a conflict is injected); else mark
    /// it busy with `what`.
    fn claim(&self, shared: &Shared, node: &str, what: &str) -> Result<(), Box<Response>> {
        let conflict = || {
            arm_error(
                StatusCode::CONFLICT,
                "Conflict",
                "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
            )
        };
        if shared.faults.take_run_command_conflict() {
            shared.events.record(
                kinds::RUN_COMMAND,
                Some(node),
                None,
                "refused 409 (fault run-command-conflict)",
            );
            return Err(Box::new(conflict()));
        }
        let mut st = self.lock();
        if st.busy.contains_key(node) {
            drop(st);
            shared.events.record(
                kinds::RUN_COMMAND,
                Some(node),
                None,
                "refused 409 (another run command is in progress)",
            );
            return Err(Box::new(conflict()));
        }
        st.busy.insert(node.to_string(), what.to_string());
        Ok(())
    }

    fn release(&self, node: &str) {
        self.lock().busy.remove(node);
    }

    /// `POST .../runCommand`.
    pub fn action(&self, shared: &Arc<Shared>, t: &Target, body: &[u8], urls: &Urls) -> Response {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let command = v["commandId"].as_str().unwrap_or("");
        if command.is_empty() {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "Required parameter 'commandId' is missing (null).",
            );
        }
        let expected = if t.linux {
            "RunShellScript"
        } else {
            "RunPowerShellScript"
        };
        if !command.eq_ignore_ascii_case(expected) {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                format!(
                    "The command '{command}' is not supported for the OS type of VM '{}' ({}).",
                    t.vm_id,
                    if t.linux { "Linux" } else { "Windows" }
                ),
            );
        }
        let script: Vec<&str> = v["script"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Err(r) = self.claim(shared, t.node, "action") {
            return *r;
        }
        let id = self.new_op();
        shared
            .events
            .record(kinds::RUN_COMMAND, Some(t.node), None, format!("start action op={id}"));
        let shared2 = shared.clone();
        let node = t.node.to_string();
        let script = script.join("\n");
        let op = id.clone();
        tokio::spawn(async move {
            let rc = &shared2.arm_state.run_commands;
            let outcome = execute(&shared2, &node, &script, ACTION_TIMEOUT).await;
            rc.release(&node);
            match outcome {
                Exec::Done { stdout, stderr, code } | Exec::TimedOut { stdout, stderr, code } => {
                    let message = format!(
                        "Enable succeeded: \n[stdout]\n{}\n[stderr]\n{}\n",
                        tail(&stdout),
                        tail(&stderr)
                    );
                    shared2.events.record(
                        kinds::RUN_COMMAND,
                        Some(&node),
                        None,
                        format!(
                            "done action op={op} exit={code:?} stdout={}B stderr={}B",
                            stdout.len(),
                            stderr.len()
                        ),
                    );
                    let result = json!({"value": [{
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Provisioning succeeded",
                        "message": message,
                    }]});
                    rc.finish(&op, "Succeeded", None, Some(result));
                }
                Exec::Failed(message) => {
                    shared2.events.record(
                        kinds::RUN_COMMAND,
                        Some(&node),
                        None,
                        format!("failed action op={op}: {message}"),
                    );
                    rc.finish(
                        &op,
                        "Failed",
                        Some(json!({"code": "VMAgentStatusCommunicationError", "message": message})),
                        None,
                    );
                }
                Exec::Hung => {} // stays InProgress
            }
        });
        accepted(StatusCode::ACCEPTED, None, urls, &id, true)
    }

    fn managed_json(&self, t: &Target, m: &Managed, expand: bool) -> Value {
        let mut v = json!({
            "id": format!("{}/runCommands/{}", t.vm_id, m.name),
            "name": m.name,
            "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands",
            "location": m.location,
            "properties": {
                "source": {"script": m.script},
                "parameters": [],
                "protectedParameters": [],
                "asyncExecution": m.async_execution,
                "timeoutInSeconds": m.timeout_secs,
                "treatFailureAsDeploymentFailure": false,
                "provisioningState": m.provisioning,
            },
        });
        if expand {
            let mut iv = json!({
                "executionState": m.execution,
                "executionMessage": "",
                "output": m.output,
                "error": m.error,
                "statuses": [],
            });
            if let Some(c) = m.exit_code {
                iv["exitCode"] = json!(c);
            }
            if let Some(s) = &m.start {
                iv["startTime"] = json!(s);
            }
            if let Some(e) = &m.end {
                iv["endTime"] = json!(e);
            }
            v["properties"]["instanceView"] = iv;
        }
        v
    }

    /// `PUT .../runCommands/{name}`.
    pub fn put_managed(&self, shared: &Arc<Shared>, t: &Target, name: &str, body: &[u8], urls: &Urls) -> Response {
        let v: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    format!("The request content was invalid and could not be deserialized: {e}"),
                )
            }
        };
        let p = &v["properties"];
        let Some(script) = p["source"]["script"].as_str() else {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "Required parameter 'properties.source.script' (or scriptUri / commandId) is missing: aks-sim runs inline scripts only.",
            );
        };
        if !t.linux {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "OperationNotAllowed",
                "aks-sim runs no scripts on Windows instances.",
            );
        }
        let timeout_secs = p["timeoutInSeconds"].as_u64().filter(|s| *s > 0).unwrap_or(90 * 60);
        let async_execution = p["asyncExecution"].as_bool().unwrap_or(false);
        if let Err(r) = self.claim(shared, t.node, name) {
            return *r;
        }
        let key = (t.node.to_string(), name.to_ascii_lowercase());
        let generation = {
            let mut st = self.lock();
            st.generation += 1;
            let g = st.generation;
            st.managed.insert(
                key.clone(),
                Managed {
                    name: name.to_string(),
                    location: v["location"].as_str().unwrap_or(&urls.location).to_string(),
                    script: script.to_string(),
                    timeout_secs,
                    async_execution,
                    provisioning: "Creating",
                    execution: "Pending",
                    exit_code: None,
                    output: String::new(),
                    error: String::new(),
                    start: None,
                    end: None,
                    generation: g,
                },
            );
            g
        };
        let id = self.new_op();
        shared.events.record(
            kinds::RUN_COMMAND,
            Some(t.node),
            None,
            format!("start managed name={name} op={id} timeout={timeout_secs}s"),
        );
        let shared2 = shared.clone();
        let node = t.node.to_string();
        let script = script.to_string();
        let op = id.clone();
        let name2 = name.to_string();
        tokio::spawn(async move {
            let rc = &shared2.arm_state.run_commands;
            let update = |f: &dyn Fn(&mut Managed)| {
                if let Some(m) = rc.lock().managed.get_mut(&key) {
                    if m.generation == generation {
                        f(m);
                    }
                }
            };
            update(&|m| {
                m.execution = "Running";
                m.start = Some(now());
            });
            if async_execution {
                update(&|m| m.provisioning = "Succeeded");
                rc.finish(&op, "Succeeded", None, None);
            }
            let outcome = execute(&shared2, &node, &script, Duration::from_secs(timeout_secs)).await;
            rc.release(&node);
            let (state, code, out, err, detail): (&'static str, Option<i32>, String, String, String) = match outcome {
                Exec::Done { stdout, stderr, code } => {
                    let state = if code == Some(0) { "Succeeded" } else { "Failed" };
                    let d = format!("exit={code:?} stdout={}B stderr={}B", stdout.len(), stderr.len());
                    (state, code, stdout, stderr, d)
                }
                Exec::TimedOut { stdout, stderr, .. } => ("TimedOut", None, stdout, stderr, "timed out".into()),
                Exec::Failed(message) => ("Failed", None, String::new(), message.clone(), message),
                Exec::Hung => return,
            };
            shared2.events.record(
                kinds::RUN_COMMAND,
                Some(&node),
                None,
                format!("done managed name={name2} op={op} state={state} {detail}"),
            );
            let (out, err) = (tail(&out), tail(&err));
            update(&|m| {
                m.execution = state;
                m.exit_code = code;
                m.output = out.clone();
                m.error = err.clone();
                m.end = Some(now());
                m.provisioning = "Succeeded";
            });
            if !async_execution {
                rc.finish(&op, "Succeeded", None, None);
            }
        });
        let m = self
            .lock()
            .managed
            .get(&(t.node.to_string(), name.to_ascii_lowercase()))
            .cloned();
        let body = m.map(|m| self.managed_json(t, &m, false));
        accepted(StatusCode::CREATED, body, urls, &id, false)
    }

    /// `GET .../runCommands/{name}` (with `$expand=instanceView`).
    pub fn get_managed(&self, t: &Target, name: &str, expand: bool) -> Response {
        match self.lock().managed.get(&(t.node.to_string(), name.to_ascii_lowercase())) {
            Some(m) => (StatusCode::OK, axum::Json(self.managed_json(t, m, expand))).into_response(),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("The Resource 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/{name}' was not found."),
            ),
        }
    }

    /// `GET .../runCommands`.
    pub fn list_managed(&self, t: &Target, expand: bool) -> Response {
        let value: Vec<Value> = self
            .lock()
            .managed
            .iter()
            .filter(|((n, _), _)| n == t.node)
            .map(|(_, m)| self.managed_json(t, m, expand))
            .collect();
        (StatusCode::OK, axum::Json(json!({"value": value}))).into_response()
    }

    /// `DELETE .../runCommands/{name}`: removes it, stopping a script that still runs.
    pub fn delete_managed(&self, shared: &Arc<Shared>, t: &Target, name: &str) -> Response {
        let removed = self
            .lock()
            .managed
            .remove(&(t.node.to_string(), name.to_ascii_lowercase()));
        match removed {
            None => StatusCode::NO_CONTENT.into_response(),
            Some(m) => {
                if m.execution == "Running" || m.execution == "Pending" {
                    // The extension stops the script (and so frees the instance).
                    let mut st = self.lock();
                    if st.busy.get(t.node).is_some_and(|w| w.eq_ignore_ascii_case(name)) {
                        st.busy.remove(t.node);
                    }
                    drop(st);
                    if let Some(root) = shared.node_runtime.get().and_then(|rt| rt.node_root(t.node)) {
                        kill_scripts_under(root, &m.script);
                    }
                }
                shared.events.record(
                    kinds::RUN_COMMAND,
                    Some(t.node),
                    None,
                    format!("deleted managed name={name}"),
                );
                StatusCode::OK.into_response()
            }
        }
    }

    /// `POST .../restart`: the machine reboots; the operation ends when it is back.
    pub fn restart(&self, shared: &Arc<Shared>, t: &Target, urls: &Urls) -> Response {
        let id = self.new_op();
        shared
            .events
            .record(kinds::VM_RESTART, Some(t.node), None, format!("start op={id}"));
        let root = shared
            .node_runtime
            .get()
            .and_then(|rt| rt.node_root(t.node))
            .map(|p| p.to_path_buf());
        let requested = match &root {
            Some(root) => std::fs::OpenOptions::new()
                .append(true)
                .open(root.join("var/lib/aks-sim/requests"))
                .and_then(|mut f| std::io::Write::write_all(&mut f, b"reboot\tvmss restart\n"))
                .map_err(|e| e.to_string()),
            None => Err("aks-sim restarts Linux instances only".to_string()),
        };
        if let Err(e) = requested {
            self.finish(
                &id,
                "Failed",
                Some(json!({"code": "OperationNotAllowed", "message": e})),
                None,
            );
            return accepted(StatusCode::ACCEPTED, None, urls, &id, true);
        }
        let shared2 = shared.clone();
        let node = t.node.to_string();
        let op = id.clone();
        tokio::spawn(async move {
            let rc = &shared2.arm_state.run_commands;
            let started = Instant::now();
            let phase = |s: &Shared| {
                s.node_runtime
                    .get()
                    .map(|rt| rt.machine_status(s, &node)["phase"].as_str().unwrap_or("").to_string())
                    .unwrap_or_default()
            };
            let mut went_down = false;
            loop {
                let p = phase(&shared2);
                if p != "running" {
                    went_down = true;
                }
                if went_down && (p == "running" || p == "booting") {
                    shared2
                        .events
                        .record(kinds::VM_RESTART, Some(&node), None, format!("done op={op}"));
                    rc.finish(&op, "Succeeded", None, Some(Value::Null));
                    return;
                }
                if started.elapsed() > RESTART_TIMEOUT {
                    rc.finish(
                        &op,
                        "Failed",
                        Some(json!({"code": "VMRestartTimedOut", "message": "The VM did not start again in time."})),
                        None,
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        accepted(StatusCode::ACCEPTED, None, urls, &id, true)
    }

    /// `GET .../operations/{id}` (the `Azure-AsyncOperation` status) or, with
    /// `monitor=true`, the `Location` (202 while running, then the result).
    pub fn operation(&self, id: &str, monitor: bool) -> Response {
        let Some(op) = self.lock().ops.get(id).cloned() else {
            return arm_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Operation '{id}' was not found."),
            );
        };
        let running = op.status == "InProgress";
        let mut r = if monitor {
            if running {
                StatusCode::ACCEPTED.into_response()
            } else if op.status == "Succeeded" {
                match op.result.filter(|v| !v.is_null()) {
                    Some(v) => (StatusCode::OK, axum::Json(v)).into_response(),
                    None => StatusCode::OK.into_response(),
                }
            } else {
                let e = op
                    .error
                    .unwrap_or(json!({"code": "Failed", "message": "The operation failed."}));
                (StatusCode::OK, axum::Json(json!({"error": e}))).into_response()
            }
        } else {
            let mut v = json!({"startTime": op.started, "status": op.status, "name": id});
            if let Some(e) = &op.ended {
                v["endTime"] = json!(e);
            }
            if let Some(e) = &op.error {
                v["error"] = e.clone();
            }
            if let Some(res) = op.result.as_ref().filter(|v| !v.is_null()) {
                v["properties"] = json!({"output": res});
            }
            (StatusCode::OK, axum::Json(v)).into_response()
        };
        if running {
            r.headers_mut().insert("retry-after", HeaderValue::from(1));
        }
        r
    }
}

/// `GET .../virtualMachines/{i}/instanceView` (also under `$expand=instanceView`).
pub fn instance_view(shared: &Shared, node: &str, os_name: &str) -> Value {
    let phase = shared
        .node_runtime
        .get()
        .map(|rt| {
            rt.machine_status(shared, node)["phase"]
                .as_str()
                .unwrap_or("running")
                .to_string()
        })
        .unwrap_or_else(|| "running".into());
    let (prov, power) = match phase.as_str() {
        "running" | "booting" => (
            ("ProvisioningState/succeeded", "Provisioning succeeded"),
            ("PowerState/running", "VM running"),
        ),
        _ => (
            ("ProvisioningState/updating", "Updating"),
            ("PowerState/starting", "VM starting"),
        ),
    };
    let t = now();
    json!({
        "platformUpdateDomain": 0,
        "platformFaultDomain": 0,
        "computerName": node,
        "osName": os_name,
        "vmAgent": {
            "vmAgentVersion": "2.12.0.2",
            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready", "message": "Guest Agent is running", "time": t}],
        },
        "statuses": [
            {"code": prov.0, "level": "Info", "displayStatus": prov.1, "time": t},
            {"code": power.0, "level": "Info", "displayStatus": power.1},
        ],
    })
}

enum Exec {
    Done {
        stdout: String,
        stderr: String,
        code: Option<i32>,
    },
    TimedOut {
        stdout: String,
        stderr: String,
        #[allow(dead_code)]
        code: Option<i32>,
    },
    Failed(String),
    Hung,
}

/// Run `script` as root in the node's root, for at least `timing.runCommandSeconds`.
async fn execute(shared: &Arc<Shared>, node: &str, script: &str, timeout: Duration) -> Exec {
    let started = Instant::now();
    let least = crate::time::secs(shared.scenario.timing.run_command_seconds);
    if shared.faults.run_command_hangs(node) {
        // The agent never reports back: the instance stays busy until the fault is cleared,
        // and the operation InProgress for good.
        while shared.faults.run_command_hangs(node) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        return Exec::Hung;
    }
    let root = shared
        .node_runtime
        .get()
        .and_then(|rt| rt.node_root(node))
        .map(|p| p.to_path_buf());
    let Some(root) = root else {
        tokio::time::sleep(least).await;
        return Exec::Failed(format!("VM '{node}' has no Linux agent aks-sim can run scripts with."));
    };
    let running = shared
        .node_runtime
        .get()
        .map(|rt| {
            rt.machine_status(shared, node)["phase"] == "running"
                || rt.machine_status(shared, node)["phase"] == "booting"
        })
        .unwrap_or(false);
    if !running {
        tokio::time::sleep(least).await;
        return Exec::Failed(format!(
            "The VM agent of '{node}' is not reporting: the VM is not running. Retry when it is running."
        ));
    }
    let mut cmd = tokio::process::Command::new("chroot");
    cmd.arg(&root)
        .arg("/bin/sh")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Exec::Failed(format!("cannot start the script: {e}")),
    };
    let out = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let elapsed = started.elapsed();
    if elapsed < least {
        tokio::time::sleep(least - elapsed).await;
    }
    match out {
        Ok(Ok(o)) => Exec::Done {
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            code: o.status.code(),
        },
        Ok(Err(e)) => Exec::Failed(format!("the script failed to run: {e}")),
        Err(_) => Exec::TimedOut {
            stdout: String::new(),
            stderr: format!("The script did not finish within {} s.", timeout.as_secs()),
            code: None,
        },
    }
}

/// Kill the `sh -c SCRIPT` processes in a node's root whose command line is `script`.
fn kill_scripts_under(root: &std::path::Path, script: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let in_root = std::fs::read_link(e.path().join("root")).is_ok_and(|r| r.starts_with(root));
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if in_root && cmdline.split(|b| *b == 0).any(|a| a == script.as_bytes()) {
            // SAFETY: a signal to a pid just read; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
