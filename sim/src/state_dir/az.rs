//! The Azure CLI stand-in (`<state-dir>/bin/az`) and what it reads: the current ARM token
//! (`az/access-token`, rewritten whenever the expired-token fault retires the old ones)
//! and a token for the AKS server application (`az/aks-token`, renewed as the real CLI
//! renews it); the service principal (`sp.json`) and its federated token.

use super::{sh_quote, write_private};
use crate::scenario::SUBSCRIPTION_NAME;
use crate::tokens::AKS_SERVER_APP;
use crate::Shared;
use serde_json::json;
use std::sync::Arc;

/// The signed-in user the `az` stand-in reports.
pub const CLI_USER: &str = "operator@aks-sim.example";

fn az_dir(shared: &Shared) -> std::path::PathBuf {
    shared.credential_dir.join("az")
}

/// Write the current ARM token where the `az` stand-in reads it, issuing a fresh one when
/// none is valid (after the expired-token fault). Called when the expired-token fault is set.
pub fn refresh_arm_token(shared: &Shared) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let mut token = shared.tokens.current_arm();
    if token.is_empty() {
        token = shared.tokens.issue_arm();
    }
    let dir = az_dir(shared);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join("access-token");
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))
}

/// Keep a valid token for the AKS server application where the `az` stand-in reads it
/// (`<state-dir>/az/aks-token`: `TOKEN EXPIRES_ON`), issuing a new one, as the Azure CLI does,
/// once the current one has lived half its lifetime. Returns whether it issued one.
pub fn refresh_aks_token(shared: &Shared) -> anyhow::Result<bool> {
    use anyhow::Context;
    let lifetime = shared.scenario.timing.token_lifetime_seconds;
    let now = crate::time::unix_now();
    let mut slot = shared.tokens.cli_aks.lock().unwrap_or_else(|p| p.into_inner());
    if slot.as_ref().is_some_and(|(_, exp)| exp - now > (lifetime / 2) as i64) {
        return Ok(false);
    }
    let (token, exp) = shared.tokens.issue_entra(AKS_SERVER_APP, CLI_USER, lifetime);
    let dir = az_dir(shared);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("aks-token");
    write_private(&path, &format!("{token} {exp}\n")).with_context(|| format!("cannot write {}", path.display()))?;
    *slot = Some((token, exp));
    Ok(true)
}

/// Renew the `az` stand-in's AKS token for as long as the emulator runs.
pub async fn renew_aks_token(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        if let Err(e) = refresh_aks_token(&shared) {
            tracing::warn!("cannot renew the az stand-in's AKS token: {e:#}");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Write the stand-in `az` into `<state-dir>/bin/az`, its token file, the service
/// principal (`<state-dir>/sp.json`) and the federated token (`<state-dir>/federated-token`)
/// (a fleet's: into the fleet's state directory).
pub fn write_standin(shared: &Shared) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let d = &shared.credential_dir;
    refresh_arm_token(shared)?;
    refresh_aks_token(shared)?;

    let fed = d.join("federated-token");
    write_private(&fed, &shared.tokens.federated_token(&shared.endpoints().kube_url))
        .with_context(|| format!("cannot write {}", fed.display()))?;
    let ep = shared.endpoints();
    let sp = json!({
        "clientId": shared.tokens.client_id,
        "clientSecret": shared.tokens.client_secret,
        "tenantId": shared.scenario.tenant_id,
        "subscriptionId": shared.scenario.subscription_id,
        "authorityHost": ep.arm_url,
        "federatedTokenFile": fed.display().to_string(),
    });
    let sp_path = d.join("sp.json");
    write_private(&sp_path, &serde_json::to_string_pretty(&sp)?)
        .with_context(|| format!("cannot write {}", sp_path.display()))?;

    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let script = AZ_SCRIPT
        .replace(
            "@TOKEN_FILE@",
            &sh_quote(&az_dir(shared).join("access-token").display().to_string()),
        )
        .replace(
            "@AKS_TOKEN_FILE@",
            &sh_quote(&az_dir(shared).join("aks-token").display().to_string()),
        )
        .replace("@SUB@", &sh_quote(&shared.scenario.subscription_id))
        .replace("@SUBS@", &sh_quote(&shared.subscriptions.join(" ")))
        .replace("@SUB_NAME@", &sh_quote(SUBSCRIPTION_NAME))
        .replace("@TENANT@", &sh_quote(&shared.scenario.tenant_id))
        .replace("@USER@", &sh_quote(CLI_USER));
    let az = bin.join("az");
    let tmp = bin.join("az.tmp");
    std::fs::write(&tmp, script).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &az).with_context(|| format!("cannot write {}", az.display()))?;
    Ok(())
}

/// The Azure CLI stand-in. Values in `@...@` are filled in shell-quoted.
const AZ_SCRIPT: &str = r#"#!/bin/sh
# Stand-in for the Azure CLI, written by aks-sim: it knows the emulator's subscriptions
# (the first is the default account) and two commands, `az account get-access-token` and
# `az account show`. Anything else fails as the real CLI does for an unknown command.
TOKEN_FILE=@TOKEN_FILE@
AKS_TOKEN_FILE=@AKS_TOKEN_FILE@
SUB=@SUB@
SUBS=@SUBS@
SUB_NAME=@SUB_NAME@
TENANT=@TENANT@
USER_NAME=@USER@

err() { echo "ERROR: $*" >&2; exit 1; }

if [ $# -lt 2 ] || [ "$1" != account ]; then
    err "'$*' is misspelled or not recognized by the system. aks-sim's az stand-in knows 'az account get-access-token' and 'az account show'."
fi
cmd=$2
shift 2
case "$cmd" in get-access-token|show) ;; *)
    err "'account $cmd' is misspelled or not recognized by the system." ;;
esac

output=json query= scope= resource= tenant= subscription=
while [ $# -gt 0 ]; do
    case "$1" in
        --only-show-errors|--verbose|--debug) shift; continue ;;
    esac
    [ $# -ge 2 ] || err "argument $1: expected one argument"
    case "$1" in
        -o|--output) output=$2 ;;
        --query) query=$2 ;;
        --scope|--scopes) scope=$2 ;;
        --resource) resource=$2 ;;
        -t|--tenant) tenant=$2 ;;
        -s|--subscription|--name|-n) subscription=$2 ;;
        *) err "unrecognized arguments: $1" ;;
    esac
    shift 2
done

case "$output" in json|jsonc|tsv) ;; *) err "argument --output/-o: invalid choice: '$output' (aks-sim's stand-in supports json and tsv)" ;; esac
if [ -n "$subscription" ] && [ "$subscription" != "$SUB_NAME" ]; then
    case " $SUBS " in
        *" $subscription "*) SUB=$subscription ;;
        *) err "Subscription '$subscription' not found. Check the spelling and casing and try again." ;;
    esac
fi
[ -r "$TOKEN_FILE" ] || err "Please run 'az login' to setup account."

# print NAME VALUE-AS-JSON VALUE-AS-TSV: the whole object (json), or the field --query names.
emit() {
    if [ -z "$query" ]; then
        [ "$output" = tsv ] && err "aks-sim's stand-in prints tsv only with --query FIELD"
        printf '%s\n' "$1"
        return
    fi
    shift
    while [ $# -ge 3 ]; do
        if [ "$1" = "$query" ]; then
            if [ "$output" = tsv ]; then printf '%s\n' "$3"; else printf '%s\n' "$2"; fi
            return
        fi
        shift 3
    done
    err "aks-sim's stand-in cannot evaluate --query '$query' (only a top-level field name)"
}

case "$cmd" in
get-access-token)
    if [ -n "$tenant" ] && [ "$tenant" != "$TENANT" ]; then
        err "AADSTS90002: Tenant '$tenant' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Run 'az login --tenant $tenant' to sign in to it."
    fi
    aud=${scope:-${resource:-https://management.core.windows.net/}}
    aud=${aud%/.default}
    aud=${aud%/}
    now=$(date +%s)
    case "$aud" in
        https://management.azure.com|https://management.core.windows.net)
            token=$(cat "$TOKEN_FILE") || err "Please run 'az login' to setup account."
            exp=$((now + 3599)) ;;
        6dae42f8-4368-4678-94ff-3960e28e3630|api://6dae42f8-4368-4678-94ff-3960e28e3630)
            read -r token exp < "$AKS_TOKEN_FILE" || err "Please run 'az login' to setup account." ;;
        *) err "AADSTS500011: The resource principal named $aud was not found in the tenant named $TENANT. aks-sim issues tokens for Azure Resource Manager and the AKS server application only." ;;
    esac
    [ -n "$token" ] || err "Please run 'az login' to setup account."
    local_exp=$(date -d "@$exp" '+%Y-%m-%d %H:%M:%S.000000' 2>/dev/null || date '+%Y-%m-%d %H:%M:%S.000000')
    emit "{
  \"accessToken\": \"$token\",
  \"expiresOn\": \"$local_exp\",
  \"expires_on\": $exp,
  \"subscription\": \"$SUB\",
  \"tenant\": \"$TENANT\",
  \"tokenType\": \"Bearer\"
}" \
        accessToken "\"$token\"" "$token" \
        expiresOn "\"$local_exp\"" "$local_exp" \
        expires_on "$exp" "$exp" \
        subscription "\"$SUB\"" "$SUB" \
        tenant "\"$TENANT\"" "$TENANT" \
        tokenType '"Bearer"' Bearer
    ;;
show)
    emit "{
  \"environmentName\": \"AzureCloud\",
  \"homeTenantId\": \"$TENANT\",
  \"id\": \"$SUB\",
  \"isDefault\": true,
  \"managedByTenants\": [],
  \"name\": \"$SUB_NAME\",
  \"state\": \"Enabled\",
  \"tenantId\": \"$TENANT\",
  \"user\": {
    \"name\": \"$USER_NAME\",
    \"type\": \"user\"
  }
}" \
        id "\"$SUB\"" "$SUB" \
        name "\"$SUB_NAME\"" "$SUB_NAME" \
        tenantId "\"$TENANT\"" "$TENANT" \
        homeTenantId "\"$TENANT\"" "$TENANT" \
        isDefault true true \
        state '"Enabled"' Enabled \
        environmentName '"AzureCloud"' AzureCloud
    ;;
esac
"#;
