# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_aks_patch_global_optspecs
    string join \n h/help V/version
end

function __fish_aks_patch_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_aks_patch_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_aks_patch_using_subcommand
    set -l cmd (__fish_aks_patch_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c aks-patch -n "__fish_aks_patch_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aks-patch -n "__fish_aks_patch_needs_command" -s V -l version -d 'Print version'
complete -c aks-patch -n "__fish_aks_patch_needs_command" -f -a "scan" -d 'Report pending updates, reboot markers and kernels of every Linux node. Changes nothing'
complete -c aks-patch -n "__fish_aks_patch_needs_command" -f -a "apply" -d 'Upgrade packages and reboot nodes that need it, one node at a time, under a cluster-wide lock'
complete -c aks-patch -n "__fish_aks_patch_needs_command" -f -a "report" -d 'The nodes as `kubectl get nodes` shows them, with patch state. No SSH: fast'
complete -c aks-patch -n "__fish_aks_patch_needs_command" -f -a "fleet" -d 'Many clusters at once: scan them, patch them in stages, report on them'
complete -c aks-patch -n "__fish_aks_patch_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -s g -l resource-group -d 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod\'s own cluster as its ServiceAccount' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -s n -l name -d 'Name of the AKS cluster' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l subscription -d 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI\'s current account)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l kubeconfig -d 'Work from a kubeconfig alone, without ARM' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l context -d 'Context in the kubeconfig (default: its current context)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l auth -d 'Which credential to use for ARM' -r -f -a "auto\t'Environment service principal, then workload identity, managed identity, Azure CLI'
env\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET'
workload-identity\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE'
managed-identity\t'The VM\'s or pod\'s managed identity'
cli\t'`az account get-access-token`'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l cloud -d 'Azure cloud' -r -f -a "AzureCloud\t''
AzureChinaCloud\t''
AzureUSGovernment\t''"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l ssh-user -d 'SSH user (default: the cluster\'s linuxProfile.adminUsername, else azureuser)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l ssh-key -d 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l ssh-port -d 'SSH port on the nodes' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l ssh-jump -d 'Jump host (bastion): user@host[:port]' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l ssh-config -d 'An ssh_config file to use' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l ssh-timeout -d 'Seconds to wait for each node\'s SSH connection and probe' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l via -d 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)' -r -f -a "ssh\t'SSH to each node\'s InternalIP: needs a network path to the nodes (VNet, VPN or --ssh-jump) and pools with SSH access'
kube\t'A short-lived privileged node-shell pod per node, through the Kubernetes API (pods/exec over WebSocket, nsenter into the host): needs only the kubeconfig, and the RBAC in docs/rbac-via-kube.yaml (on top of docs/rbac.yaml)'
run-command\t'VM scale set run commands through ARM alone (no network path to the nodes or the API server\'s exec needed): needs -g/-n and runCommands/write (or runCommand/action) on the node resource group. Slow: one run command at a time per VM, 20 s or more each'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l node-shell-image -d 'The node-shell pods\' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l node-shell-namespace -d 'The namespace of the node-shell pods (--via kube)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l connect-timeout -d 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l parallel -d 'How many nodes to probe at once' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l fail-on -d 'Exit with code 6 when a node needs a reboot, or has pending updates' -r -f -a "reboot-required\t''
pending\t''"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l pushgateway-url -d 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -s o -l output -d 'Output format' -r -f -a "table\t'Columns for people'
wide\t'More columns (for `report`: exactly `kubectl get nodes -o wide`, then patch state)'
json\t'JSON'
jsonc\t'JSON, coloured'
yaml\t'YAML'
yamlc\t'YAML, coloured'
tsv\t'Tab-separated values, no headers: for scripts'
none\t'No output (exit code only)'
prometheus\t'Prometheus text exposition format (`report` only: for node_exporter\'s textfile collector)'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l query -d 'JMESPath query applied to the result before formatting (see http://jmespath.org)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l admin -d 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l ssh-strict-host-keys -d 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l refresh -d 'Run `apt-get update` (Azure Linux: `tdnf makecache`) on each node first (otherwise nothing on the nodes changes)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l verbose -d 'Print more about what is happening (to stderr)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l debug -d 'Print everything, including HTTP requests (never their secrets), to stderr'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -l only-show-errors -d 'Print only errors: no warnings, no progress'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand scan" -s V -l version -d 'Print version'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -s g -l resource-group -d 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod\'s own cluster as its ServiceAccount' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -s n -l name -d 'Name of the AKS cluster' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l subscription -d 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI\'s current account)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l kubeconfig -d 'Work from a kubeconfig alone, without ARM' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l context -d 'Context in the kubeconfig (default: its current context)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l auth -d 'Which credential to use for ARM' -r -f -a "auto\t'Environment service principal, then workload identity, managed identity, Azure CLI'
env\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET'
workload-identity\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE'
managed-identity\t'The VM\'s or pod\'s managed identity'
cli\t'`az account get-access-token`'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l cloud -d 'Azure cloud' -r -f -a "AzureCloud\t''
AzureChinaCloud\t''
AzureUSGovernment\t''"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l ssh-user -d 'SSH user (default: the cluster\'s linuxProfile.adminUsername, else azureuser)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l ssh-key -d 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l ssh-port -d 'SSH port on the nodes' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l ssh-jump -d 'Jump host (bastion): user@host[:port]' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l ssh-config -d 'An ssh_config file to use' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l ssh-timeout -d 'Seconds to wait for each node\'s SSH connection and probe' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l via -d 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)' -r -f -a "ssh\t'SSH to each node\'s InternalIP: needs a network path to the nodes (VNet, VPN or --ssh-jump) and pools with SSH access'
kube\t'A short-lived privileged node-shell pod per node, through the Kubernetes API (pods/exec over WebSocket, nsenter into the host): needs only the kubeconfig, and the RBAC in docs/rbac-via-kube.yaml (on top of docs/rbac.yaml)'
run-command\t'VM scale set run commands through ARM alone (no network path to the nodes or the API server\'s exec needed): needs -g/-n and runCommands/write (or runCommand/action) on the node resource group. Slow: one run command at a time per VM, 20 s or more each'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l node-shell-image -d 'The node-shell pods\' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l node-shell-namespace -d 'The namespace of the node-shell pods (--via kube)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l connect-timeout -d 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l parallel -d 'How many nodes the pre-flight (and --dry-run) probes at once, as `scan --parallel`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l max-unavailable -d 'Patch nodes in batches: at most N nodes (or P% of each pool, rounded down, at least 1) out of service at once, counting nodes out for any other reason; one availability zone at a time, sized so the evicted pods fit on the nodes that stay and no PDB is exceeded' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l nodepool -d 'Only nodes of these pools (comma-separated or repeated)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l nodes -d 'Only these nodes (comma-separated or repeated)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -s l -l selector -d 'Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l upgrade-mode -d 'Which upgrades to install' -r -f -a "security\t'Only packages from the -security pocket (what unattended-upgrades installs); refused on Azure Linux (see --azure-linux-security-as-all)'
all\t'All upgrades, installing new packages they need (new kernels): `apt-get upgrade --with-new-pkgs`; Azure Linux: `tdnf -y update --refresh`'
dist\t'`apt-get dist-upgrade`: may also remove packages; Azure Linux: as all'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l reboot -d 'When to reboot' -r -f -a "if-required\t'Reboot when /var/run/reboot-required is there after the upgrade'
always\t'Reboot every node'
never\t'Never reboot (upgrade only)'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l grace-period -d 'Grace period for evicted pods, in seconds; -1 (the default) means each pod\'s own, as with kubectl drain' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l drain-timeout -d 'Give up draining a node after this many seconds (PDBs that keep refusing)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l reboot-timeout -d 'Give up waiting for a rebooted node after this many seconds' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l health-wait -d 'Before taking a node out, wait up to this many seconds for every other node to be Ready and the last node\'s workloads to be Ready again; then stop' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l request-timeout -d 'Fail when the Kubernetes API server does not answer the first request within this many seconds' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l soak -d 'Wait this long after a node is back before the next one' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l journal-dir -d 'Where run records are kept (default: runs/ in the state directory: $AKS_PATCH_STATE_DIR, else $XDG_STATE_HOME/aks-patch, else ~/.local/state/aks-patch)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l run-record -d 'Where the run record is kept: `file` (in --journal-dir; the default outside a pod) or `cluster` (a ConfigMap per run in the pod\'s namespace, or the kubeconfig context\'s; the default in a pod with no cluster named, whose files die with it). `--resume` looks in the same place: give the same choice again' -r -f -a "file\t'A JSON file per run in the journal directory'
cluster\t'A ConfigMap per run, in the namespace aks-patch runs in'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l eviction-retry-interval -d 'Seconds between retries of an eviction refused by a PodDisruptionBudget' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l window -d 'Take nodes out only inside this window: `DAYS HH:MM-HH:MM` (e.g. `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-02:00`: a range may wrap midnight; days are optional), or `aks` for the cluster\'s planned-maintenance schedule (aksManagedNodeOSUpgradeSchedule, else default). Repeatable. Outside it, apply exits 8 with the next opening' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l time-zone -d 'Time zone of the --window times (IANA name, e.g. Europe/Berlin). Checked even without --window (a script may pass it to every run), where it changes nothing' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l node-budget -d 'How long a node is out (cordon to uncordon) when no past run of this cluster tells; a node is taken out only if it should be back before its window closes (e.g. 15m, 1h)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l blocking-pod-selector -d 'No node is taken out while pods matching this label selector exist (repeatable), e.g. `app=backup`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l blocking-pod-scope -d 'Where a blocking pod counts: anywhere in the cluster, or on the node about to be taken out' -r -f -a "cluster\t'Anywhere in the cluster'
node\t'On the node about to be taken out'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l prometheus-url -d 'No node is taken out while this Prometheus server has active alerts (its /api/v1/alerts) that are not filtered out; an unreachable one blocks too' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l alert-filter-regexp -d 'Ignore the alerts whose name matches this regular expression (with --alert-filter-match-only: only those block)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l blocker-wait -d 'Wait this long for the blockers to clear before a node is taken out (re-checking), then stop at that safe point with exit 9 (e.g. 10m, 90s)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l notify-url -d 'Send the rollout\'s events (run started, node started, node done, node halted or left cordoned, run finished) to this webhook (repeatable): Slack (https://hooks.slack.com/...), a Teams workflow, or a generic JSON webhook (webhook+https://...); slack+ and teams+ prefixes force the service. Never printed' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l notify-template -d 'The notification text, with fields {event} {cluster} {node} {pool} {kernel_before} {kernel_after} {duration} {reason} {run_id} {text}' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l pushgateway-url -d 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -s o -l output -d 'Output format' -r -f -a "table\t'Columns for people'
wide\t'More columns (for `report`: exactly `kubectl get nodes -o wide`, then patch state)'
json\t'JSON'
jsonc\t'JSON, coloured'
yaml\t'YAML'
yamlc\t'YAML, coloured'
tsv\t'Tab-separated values, no headers: for scripts'
none\t'No output (exit code only)'
prometheus\t'Prometheus text exposition format (`report` only: for node_exporter\'s textfile collector)'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l query -d 'JMESPath query applied to the result before formatting (see http://jmespath.org)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l admin -d 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l ssh-strict-host-keys -d 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l one-at-a-time -d 'Patch one node at a time (the default way; `--one-at-a-time` or `--max-unavailable` is required so that nobody gets a pace by surprise; `--resume` keeps the run\'s own)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l across-zones -d 'With --max-unavailable: a batch may take nodes of several availability zones'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l dry-run -d 'Show the plan, the pods each drain would evict and the PDBs that block now; change nothing'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -s y -l yes -d 'Do not ask for confirmation'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l delete-emptydir-data -d 'Evict pods with emptyDir volumes (their data is lost), as kubectl drain --delete-emptydir-data'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l force -d 'Evict pods with no controller (they are not recreated), as kubectl drain --force'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l azure-linux-security-as-all -d 'On Azure Linux nodes, which classify no update as security, install all updates when `--upgrade-mode security` is asked (otherwise such nodes are refused)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l allow-azure-linux-2 -d 'Patch Azure Linux 2.0 (CBL-Mariner) nodes, out of support since 30 Nov 2025 (otherwise they are refused; migrate them to Azure Linux 3)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l allow-pending-pods -d 'Take a node out even when pods it runs would have nowhere to go (no other schedulable Ready node matches their nodeSelector, required node affinity and tolerations): they stay Pending until it is back. Otherwise the run refuses before any change, or stops before that node\'s cordon'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l no-pending-taint -d 'Do not put the PreferNoSchedule taint aks-patch.io/pending=<run id> on the nodes still to patch (it makes the pods each drain evicts prefer the nodes already patched, so that they move once; it is removed from each node when its turn ends, and from all of them when the run ends)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l force-unlock -d 'Take over a lock left behind by a run that died'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l resume -d 'Continue the last interrupted run of this cluster'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l resume-or-start -d 'Continue the newest unfinished run of this cluster if there is one (as --resume, its options the record\'s), else start a new run: for schedules (the CronJob), so that a run killed half-way is finished by the next'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l wait-for-window -d 'Outside the window, wait for it to open (a countdown on a terminal) instead of exiting 8'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l alert-filter-match-only -d 'Only the alerts matching --alert-filter-regexp block'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l alert-firing-only -d 'Only firing alerts block (not pending ones)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l verbose -d 'Print more about what is happening (to stderr)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l debug -d 'Print everything, including HTTP requests (never their secrets), to stderr'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -l only-show-errors -d 'Print only errors: no warnings, no progress'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand apply" -s V -l version -d 'Print version'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -s g -l resource-group -d 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod\'s own cluster as its ServiceAccount' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -s n -l name -d 'Name of the AKS cluster' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l subscription -d 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI\'s current account)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l kubeconfig -d 'Work from a kubeconfig alone, without ARM' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l context -d 'Context in the kubeconfig (default: its current context)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l auth -d 'Which credential to use for ARM' -r -f -a "auto\t'Environment service principal, then workload identity, managed identity, Azure CLI'
env\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET'
workload-identity\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE'
managed-identity\t'The VM\'s or pod\'s managed identity'
cli\t'`az account get-access-token`'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l cloud -d 'Azure cloud' -r -f -a "AzureCloud\t''
AzureChinaCloud\t''
AzureUSGovernment\t''"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l run-record -d 'Where the run records are read from (see `apply --run-record`)' -r -f -a "file\t'A JSON file per run in the journal directory'
cluster\t'A ConfigMap per run, in the namespace aks-patch runs in'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -s o -l output -d 'Output format' -r -f -a "table\t'Columns for people'
wide\t'More columns (for `report`: exactly `kubectl get nodes -o wide`, then patch state)'
json\t'JSON'
jsonc\t'JSON, coloured'
yaml\t'YAML'
yamlc\t'YAML, coloured'
tsv\t'Tab-separated values, no headers: for scripts'
none\t'No output (exit code only)'
prometheus\t'Prometheus text exposition format (`report` only: for node_exporter\'s textfile collector)'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l query -d 'JMESPath query applied to the result before formatting (see http://jmespath.org)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l admin -d 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l verbose -d 'Print more about what is happening (to stderr)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l debug -d 'Print everything, including HTTP requests (never their secrets), to stderr'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -l only-show-errors -d 'Print only errors: no warnings, no progress'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand report" -s V -l version -d 'Print version'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and not __fish_seen_subcommand_from scan apply report help" -s h -l help -d 'Print help'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and not __fish_seen_subcommand_from scan apply report help" -s V -l version -d 'Print version'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and not __fish_seen_subcommand_from scan apply report help" -f -a "scan" -d 'Scan every chosen cluster at once: one row a cluster (per-node detail with -o json)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and not __fish_seen_subcommand_from scan apply report help" -f -a "apply" -d 'Patch the chosen clusters in stages, each with exactly the rollout of `apply`'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and not __fish_seen_subcommand_from scan apply report help" -f -a "report" -d 'One row a cluster from the last scans and runs (no SSH)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and not __fish_seen_subcommand_from scan apply report help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l subscription -d 'Subscription ID or name to look in (repeatable; default: every subscription the credential can list)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l tag -d 'Only clusters with this tag (repeatable: all must match)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -s g -l resource-group -d 'Only clusters in this resource group (repeatable)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -s n -l name -d 'Only clusters of these names (repeatable, or a comma list)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l where -d 'A Azure Resource Graph condition on the clusters, appended as `| where (CLAUSE)`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l fleet -d 'The members of an AKS Fleet Manager fleet instead (RG/NAME, in the first --subscription)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l clusters-file -d 'The clusters of a file instead: one resource id a line (`#` comments)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l auth -d 'Which credential to use for ARM' -r -f -a "auto\t'Environment service principal, then workload identity, managed identity, Azure CLI'
env\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET'
workload-identity\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE'
managed-identity\t'The VM\'s or pod\'s managed identity'
cli\t'`az account get-access-token`'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l cloud -d 'Azure cloud' -r -f -a "AzureCloud\t''
AzureChinaCloud\t''
AzureUSGovernment\t''"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l max-clusters -d 'Clusters scanned at once, at most' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l ssh-user -d 'SSH user (default: the cluster\'s linuxProfile.adminUsername, else azureuser)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l ssh-key -d 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l ssh-port -d 'SSH port on the nodes' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l ssh-jump -d 'Jump host (bastion): user@host[:port]' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l ssh-config -d 'An ssh_config file to use' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l ssh-timeout -d 'Seconds to wait for each node\'s SSH connection and probe' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l via -d 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)' -r -f -a "ssh\t'SSH to each node\'s InternalIP: needs a network path to the nodes (VNet, VPN or --ssh-jump) and pools with SSH access'
kube\t'A short-lived privileged node-shell pod per node, through the Kubernetes API (pods/exec over WebSocket, nsenter into the host): needs only the kubeconfig, and the RBAC in docs/rbac-via-kube.yaml (on top of docs/rbac.yaml)'
run-command\t'VM scale set run commands through ARM alone (no network path to the nodes or the API server\'s exec needed): needs -g/-n and runCommands/write (or runCommand/action) on the node resource group. Slow: one run command at a time per VM, 20 s or more each'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l node-shell-image -d 'The node-shell pods\' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l node-shell-namespace -d 'The namespace of the node-shell pods (--via kube)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l connect-timeout -d 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l parallel -d 'How many nodes to probe at once' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l fail-on -d 'Exit with code 6 when a node needs a reboot, or has pending updates' -r -f -a "reboot-required\t''
pending\t''"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l pushgateway-url -d 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -s o -l output -d 'Output format' -r -f -a "table\t'Columns for people'
wide\t'More columns (for `report`: exactly `kubectl get nodes -o wide`, then patch state)'
json\t'JSON'
jsonc\t'JSON, coloured'
yaml\t'YAML'
yamlc\t'YAML, coloured'
tsv\t'Tab-separated values, no headers: for scripts'
none\t'No output (exit code only)'
prometheus\t'Prometheus text exposition format (`report` only: for node_exporter\'s textfile collector)'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l query -d 'JMESPath query applied to the result before formatting (see http://jmespath.org)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l admin -d 'Use each cluster\'s admin credential (listClusterAdminCredential)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l ssh-strict-host-keys -d 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l refresh -d 'Run `apt-get update` (Azure Linux: `tdnf makecache`) on each node first (otherwise nothing on the nodes changes)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l verbose -d 'Print more about what is happening (to stderr)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l debug -d 'Print everything, including HTTP requests (never their secrets), to stderr'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -l only-show-errors -d 'Print only errors: no warnings, no progress'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from scan" -s V -l version -d 'Print version'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l subscription -d 'Subscription ID or name to look in (repeatable; default: every subscription the credential can list)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l tag -d 'Only clusters with this tag (repeatable: all must match)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -s g -l resource-group -d 'Only clusters in this resource group (repeatable)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -s n -l name -d 'Only clusters of these names (repeatable, or a comma list)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l where -d 'A Azure Resource Graph condition on the clusters, appended as `| where (CLAUSE)`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l fleet -d 'The members of an AKS Fleet Manager fleet instead (RG/NAME, in the first --subscription)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l clusters-file -d 'The clusters of a file instead: one resource id a line (`#` comments)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l auth -d 'Which credential to use for ARM' -r -f -a "auto\t'Environment service principal, then workload identity, managed identity, Azure CLI'
env\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET'
workload-identity\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE'
managed-identity\t'The VM\'s or pod\'s managed identity'
cli\t'`az account get-access-token`'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l cloud -d 'Azure cloud' -r -f -a "AzureCloud\t''
AzureChinaCloud\t''
AzureUSGovernment\t''"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l stage -d 'A stage: the clusters whose tags match (KEY=VALUE[,KEY=VALUE]); repeat in order' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l update-strategy -d 'The stages of this update strategy of the --fleet (stages of groups, their waits)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l max-clusters -d 'Clusters patched at once, at most (within a stage)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l stage-wait -d 'Soak between stages (e.g. 30m, 1h); a strategy\'s own afterStageWaitInSeconds wins' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l ssh-user -d 'SSH user (default: the cluster\'s linuxProfile.adminUsername, else azureuser)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l ssh-key -d 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l ssh-port -d 'SSH port on the nodes' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l ssh-jump -d 'Jump host (bastion): user@host[:port]' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l ssh-config -d 'An ssh_config file to use' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l ssh-timeout -d 'Seconds to wait for each node\'s SSH connection and probe' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l via -d 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)' -r -f -a "ssh\t'SSH to each node\'s InternalIP: needs a network path to the nodes (VNet, VPN or --ssh-jump) and pools with SSH access'
kube\t'A short-lived privileged node-shell pod per node, through the Kubernetes API (pods/exec over WebSocket, nsenter into the host): needs only the kubeconfig, and the RBAC in docs/rbac-via-kube.yaml (on top of docs/rbac.yaml)'
run-command\t'VM scale set run commands through ARM alone (no network path to the nodes or the API server\'s exec needed): needs -g/-n and runCommands/write (or runCommand/action) on the node resource group. Slow: one run command at a time per VM, 20 s or more each'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l node-shell-image -d 'The node-shell pods\' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l node-shell-namespace -d 'The namespace of the node-shell pods (--via kube)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l connect-timeout -d 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l parallel -d 'How many nodes the pre-flight (and --dry-run) probes at once, as `scan --parallel`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l max-unavailable -d 'Patch nodes in batches: at most N nodes (or P% of each pool, rounded down, at least 1) out of service at once, counting nodes out for any other reason; one availability zone at a time, sized so the evicted pods fit on the nodes that stay and no PDB is exceeded' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l nodepool -d 'Only nodes of these pools (comma-separated or repeated)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l nodes -d 'Only these nodes (comma-separated or repeated)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -s l -l selector -d 'Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l upgrade-mode -d 'Which upgrades to install' -r -f -a "security\t'Only packages from the -security pocket (what unattended-upgrades installs); refused on Azure Linux (see --azure-linux-security-as-all)'
all\t'All upgrades, installing new packages they need (new kernels): `apt-get upgrade --with-new-pkgs`; Azure Linux: `tdnf -y update --refresh`'
dist\t'`apt-get dist-upgrade`: may also remove packages; Azure Linux: as all'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l reboot -d 'When to reboot' -r -f -a "if-required\t'Reboot when /var/run/reboot-required is there after the upgrade'
always\t'Reboot every node'
never\t'Never reboot (upgrade only)'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l grace-period -d 'Grace period for evicted pods, in seconds; -1 (the default) means each pod\'s own, as with kubectl drain' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l drain-timeout -d 'Give up draining a node after this many seconds (PDBs that keep refusing)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l reboot-timeout -d 'Give up waiting for a rebooted node after this many seconds' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l health-wait -d 'Before taking a node out, wait up to this many seconds for every other node to be Ready and the last node\'s workloads to be Ready again; then stop' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l request-timeout -d 'Fail when the Kubernetes API server does not answer the first request within this many seconds' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l soak -d 'Wait this long after a node is back before the next one' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l journal-dir -d 'Where run records are kept (default: runs/ in the state directory: $AKS_PATCH_STATE_DIR, else $XDG_STATE_HOME/aks-patch, else ~/.local/state/aks-patch)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l run-record -d 'Where the run record is kept: `file` (in --journal-dir; the default outside a pod) or `cluster` (a ConfigMap per run in the pod\'s namespace, or the kubeconfig context\'s; the default in a pod with no cluster named, whose files die with it). `--resume` looks in the same place: give the same choice again' -r -f -a "file\t'A JSON file per run in the journal directory'
cluster\t'A ConfigMap per run, in the namespace aks-patch runs in'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l eviction-retry-interval -d 'Seconds between retries of an eviction refused by a PodDisruptionBudget' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l window -d 'Take nodes out only inside this window: `DAYS HH:MM-HH:MM` (e.g. `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-02:00`: a range may wrap midnight; days are optional), or `aks` for the cluster\'s planned-maintenance schedule (aksManagedNodeOSUpgradeSchedule, else default). Repeatable. Outside it, apply exits 8 with the next opening' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l time-zone -d 'Time zone of the --window times (IANA name, e.g. Europe/Berlin). Checked even without --window (a script may pass it to every run), where it changes nothing' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l node-budget -d 'How long a node is out (cordon to uncordon) when no past run of this cluster tells; a node is taken out only if it should be back before its window closes (e.g. 15m, 1h)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l blocking-pod-selector -d 'No node is taken out while pods matching this label selector exist (repeatable), e.g. `app=backup`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l blocking-pod-scope -d 'Where a blocking pod counts: anywhere in the cluster, or on the node about to be taken out' -r -f -a "cluster\t'Anywhere in the cluster'
node\t'On the node about to be taken out'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l prometheus-url -d 'No node is taken out while this Prometheus server has active alerts (its /api/v1/alerts) that are not filtered out; an unreachable one blocks too' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l alert-filter-regexp -d 'Ignore the alerts whose name matches this regular expression (with --alert-filter-match-only: only those block)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l blocker-wait -d 'Wait this long for the blockers to clear before a node is taken out (re-checking), then stop at that safe point with exit 9 (e.g. 10m, 90s)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l notify-url -d 'Send the rollout\'s events (run started, node started, node done, node halted or left cordoned, run finished) to this webhook (repeatable): Slack (https://hooks.slack.com/...), a Teams workflow, or a generic JSON webhook (webhook+https://...); slack+ and teams+ prefixes force the service. Never printed' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l notify-template -d 'The notification text, with fields {event} {cluster} {node} {pool} {kernel_before} {kernel_after} {duration} {reason} {run_id} {text}' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l pushgateway-url -d 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -s o -l output -d 'Output format' -r -f -a "table\t'Columns for people'
wide\t'More columns (for `report`: exactly `kubectl get nodes -o wide`, then patch state)'
json\t'JSON'
jsonc\t'JSON, coloured'
yaml\t'YAML'
yamlc\t'YAML, coloured'
tsv\t'Tab-separated values, no headers: for scripts'
none\t'No output (exit code only)'
prometheus\t'Prometheus text exposition format (`report` only: for node_exporter\'s textfile collector)'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l query -d 'JMESPath query applied to the result before formatting (see http://jmespath.org)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l admin -d 'Use each cluster\'s admin credential (listClusterAdminCredential)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l continue-stage -d 'A failed cluster lets the others of its stage finish (later stages still do not start)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l ssh-strict-host-keys -d 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l one-at-a-time -d 'Patch one node at a time (the default way; `--one-at-a-time` or `--max-unavailable` is required so that nobody gets a pace by surprise; `--resume` keeps the run\'s own)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l across-zones -d 'With --max-unavailable: a batch may take nodes of several availability zones'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l dry-run -d 'Show the plan, the pods each drain would evict and the PDBs that block now; change nothing'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -s y -l yes -d 'Do not ask for confirmation'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l delete-emptydir-data -d 'Evict pods with emptyDir volumes (their data is lost), as kubectl drain --delete-emptydir-data'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l force -d 'Evict pods with no controller (they are not recreated), as kubectl drain --force'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l azure-linux-security-as-all -d 'On Azure Linux nodes, which classify no update as security, install all updates when `--upgrade-mode security` is asked (otherwise such nodes are refused)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l allow-azure-linux-2 -d 'Patch Azure Linux 2.0 (CBL-Mariner) nodes, out of support since 30 Nov 2025 (otherwise they are refused; migrate them to Azure Linux 3)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l allow-pending-pods -d 'Take a node out even when pods it runs would have nowhere to go (no other schedulable Ready node matches their nodeSelector, required node affinity and tolerations): they stay Pending until it is back. Otherwise the run refuses before any change, or stops before that node\'s cordon'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l no-pending-taint -d 'Do not put the PreferNoSchedule taint aks-patch.io/pending=<run id> on the nodes still to patch (it makes the pods each drain evicts prefer the nodes already patched, so that they move once; it is removed from each node when its turn ends, and from all of them when the run ends)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l force-unlock -d 'Take over a lock left behind by a run that died'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l resume -d 'Continue the last interrupted run of this cluster'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l resume-or-start -d 'Continue the newest unfinished run of this cluster if there is one (as --resume, its options the record\'s), else start a new run: for schedules (the CronJob), so that a run killed half-way is finished by the next'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l wait-for-window -d 'Outside the window, wait for it to open (a countdown on a terminal) instead of exiting 8'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l alert-filter-match-only -d 'Only the alerts matching --alert-filter-regexp block'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l alert-firing-only -d 'Only firing alerts block (not pending ones)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l verbose -d 'Print more about what is happening (to stderr)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l debug -d 'Print everything, including HTTP requests (never their secrets), to stderr'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -l only-show-errors -d 'Print only errors: no warnings, no progress'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from apply" -s V -l version -d 'Print version'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l subscription -d 'Subscription ID or name to look in (repeatable; default: every subscription the credential can list)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l tag -d 'Only clusters with this tag (repeatable: all must match)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -s g -l resource-group -d 'Only clusters in this resource group (repeatable)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -s n -l name -d 'Only clusters of these names (repeatable, or a comma list)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l where -d 'A Azure Resource Graph condition on the clusters, appended as `| where (CLAUSE)`' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l fleet -d 'The members of an AKS Fleet Manager fleet instead (RG/NAME, in the first --subscription)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l clusters-file -d 'The clusters of a file instead: one resource id a line (`#` comments)' -r -F
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l auth -d 'Which credential to use for ARM' -r -f -a "auto\t'Environment service principal, then workload identity, managed identity, Azure CLI'
env\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET'
workload-identity\t'AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE'
managed-identity\t'The VM\'s or pod\'s managed identity'
cli\t'`az account get-access-token`'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l cloud -d 'Azure cloud' -r -f -a "AzureCloud\t''
AzureChinaCloud\t''
AzureUSGovernment\t''"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -s o -l output -d 'Output format' -r -f -a "table\t'Columns for people'
wide\t'More columns (for `report`: exactly `kubectl get nodes -o wide`, then patch state)'
json\t'JSON'
jsonc\t'JSON, coloured'
yaml\t'YAML'
yamlc\t'YAML, coloured'
tsv\t'Tab-separated values, no headers: for scripts'
none\t'No output (exit code only)'
prometheus\t'Prometheus text exposition format (`report` only: for node_exporter\'s textfile collector)'"
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l query -d 'JMESPath query applied to the result before formatting (see http://jmespath.org)' -r
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l admin -d 'Use each cluster\'s admin credential (listClusterAdminCredential)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l verbose -d 'Print more about what is happening (to stderr)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l debug -d 'Print everything, including HTTP requests (never their secrets), to stderr'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -l only-show-errors -d 'Print only errors: no warnings, no progress'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from report" -s V -l version -d 'Print version'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "scan" -d 'Scan every chosen cluster at once: one row a cluster (per-node detail with -o json)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "apply" -d 'Patch the chosen clusters in stages, each with exactly the rollout of `apply`'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "report" -d 'One row a cluster from the last scans and runs (no SSH)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand help; and not __fish_seen_subcommand_from scan apply report fleet help" -f -a "scan" -d 'Report pending updates, reboot markers and kernels of every Linux node. Changes nothing'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand help; and not __fish_seen_subcommand_from scan apply report fleet help" -f -a "apply" -d 'Upgrade packages and reboot nodes that need it, one node at a time, under a cluster-wide lock'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand help; and not __fish_seen_subcommand_from scan apply report fleet help" -f -a "report" -d 'The nodes as `kubectl get nodes` shows them, with patch state. No SSH: fast'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand help; and not __fish_seen_subcommand_from scan apply report fleet help" -f -a "fleet" -d 'Many clusters at once: scan them, patch them in stages, report on them'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand help; and not __fish_seen_subcommand_from scan apply report fleet help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand help; and __fish_seen_subcommand_from fleet" -f -a "scan" -d 'Scan every chosen cluster at once: one row a cluster (per-node detail with -o json)'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand help; and __fish_seen_subcommand_from fleet" -f -a "apply" -d 'Patch the chosen clusters in stages, each with exactly the rollout of `apply`'
complete -c aks-patch -n "__fish_aks_patch_using_subcommand help; and __fish_seen_subcommand_from fleet" -f -a "report" -d 'One row a cluster from the last scans and runs (no SSH)'
