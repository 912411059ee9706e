
use builtin;
use str;

set edit:completion:arg-completer[aks-patch] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'aks-patch'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'aks-patch'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand scan 'Report pending updates, reboot markers and kernels of every Linux node. Changes nothing'
            cand apply 'Upgrade packages and reboot nodes that need it, one node at a time, under a cluster-wide lock'
            cand report 'The nodes as `kubectl get nodes` shows them, with patch state. No SSH: fast'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aks-patch;scan'= {
            cand -g 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount'
            cand --resource-group 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount'
            cand -n 'Name of the AKS cluster'
            cand --name 'Name of the AKS cluster'
            cand --subscription 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI''s current account)'
            cand --kubeconfig 'Work from a kubeconfig alone, without ARM'
            cand --context 'Context in the kubeconfig (default: its current context)'
            cand --auth 'Which credential to use for ARM'
            cand --cloud 'Azure cloud'
            cand --ssh-user 'SSH user (default: the cluster''s linuxProfile.adminUsername, else azureuser)'
            cand --ssh-key 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)'
            cand --ssh-port 'SSH port on the nodes'
            cand --ssh-jump 'Jump host (bastion): user@host[:port]'
            cand --ssh-config 'An ssh_config file to use'
            cand --ssh-timeout 'Seconds to wait for each node''s SSH connection and probe'
            cand --via 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)'
            cand --node-shell-image 'The node-shell pods'' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`'
            cand --node-shell-namespace 'The namespace of the node-shell pods (--via kube)'
            cand --connect-timeout 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)'
            cand --parallel 'How many nodes to probe at once'
            cand --fail-on 'Exit with code 6 when a node needs a reboot, or has pending updates'
            cand --pushgateway-url 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --query 'JMESPath query applied to the result before formatting (see http://jmespath.org)'
            cand --admin 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one'
            cand --ssh-strict-host-keys 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)'
            cand --refresh 'Run `apt-get update` (Azure Linux: `tdnf makecache`) on each node first (otherwise nothing on the nodes changes)'
            cand --verbose 'Print more about what is happening (to stderr)'
            cand --debug 'Print everything, including HTTP requests (never their secrets), to stderr'
            cand --only-show-errors 'Print only errors: no warnings, no progress'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aks-patch;apply'= {
            cand -g 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount'
            cand --resource-group 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount'
            cand -n 'Name of the AKS cluster'
            cand --name 'Name of the AKS cluster'
            cand --subscription 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI''s current account)'
            cand --kubeconfig 'Work from a kubeconfig alone, without ARM'
            cand --context 'Context in the kubeconfig (default: its current context)'
            cand --auth 'Which credential to use for ARM'
            cand --cloud 'Azure cloud'
            cand --ssh-user 'SSH user (default: the cluster''s linuxProfile.adminUsername, else azureuser)'
            cand --ssh-key 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)'
            cand --ssh-port 'SSH port on the nodes'
            cand --ssh-jump 'Jump host (bastion): user@host[:port]'
            cand --ssh-config 'An ssh_config file to use'
            cand --ssh-timeout 'Seconds to wait for each node''s SSH connection and probe'
            cand --via 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)'
            cand --node-shell-image 'The node-shell pods'' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`'
            cand --node-shell-namespace 'The namespace of the node-shell pods (--via kube)'
            cand --connect-timeout 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)'
            cand --parallel 'How many nodes the pre-flight (and --dry-run) probes at once, as `scan --parallel`'
            cand --max-unavailable 'Patch nodes in batches: at most N nodes (or P% of each pool, rounded down, at least 1) out of service at once, counting nodes out for any other reason; one availability zone at a time, sized so the evicted pods fit on the nodes that stay and no PDB is exceeded'
            cand --nodepool 'Only nodes of these pools (comma-separated or repeated)'
            cand --nodes 'Only these nodes (comma-separated or repeated)'
            cand -l 'Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`)'
            cand --selector 'Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`)'
            cand --upgrade-mode 'Which upgrades to install'
            cand --reboot 'When to reboot'
            cand --grace-period 'Grace period for evicted pods, in seconds; -1 (the default) means each pod''s own, as with kubectl drain'
            cand --drain-timeout 'Give up draining a node after this many seconds (PDBs that keep refusing)'
            cand --reboot-timeout 'Give up waiting for a rebooted node after this many seconds'
            cand --health-wait 'Before taking a node out, wait up to this many seconds for every other node to be Ready and the last node''s workloads to be Ready again; then stop'
            cand --request-timeout 'Fail when the Kubernetes API server does not answer the first request within this many seconds'
            cand --soak 'Wait this long after a node is back before the next one'
            cand --journal-dir 'Where run records are kept (default: runs/ in the state directory: $AKS_PATCH_STATE_DIR, else $XDG_STATE_HOME/aks-patch, else ~/.local/state/aks-patch)'
            cand --run-record 'Where the run record is kept: `file` (in --journal-dir; the default outside a pod) or `cluster` (a ConfigMap per run in the pod''s namespace, or the kubeconfig context''s; the default in a pod with no cluster named, whose files die with it). `--resume` looks in the same place: give the same choice again'
            cand --eviction-retry-interval 'Seconds between retries of an eviction refused by a PodDisruptionBudget'
            cand --window 'Take nodes out only inside this window: `DAYS HH:MM-HH:MM` (e.g. `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-02:00`: a range may wrap midnight; days are optional), or `aks` for the cluster''s planned-maintenance schedule (aksManagedNodeOSUpgradeSchedule, else default). Repeatable. Outside it, apply exits 8 with the next opening'
            cand --time-zone 'Time zone of the --window times (IANA name, e.g. Europe/Berlin). Checked even without --window (a script may pass it to every run), where it changes nothing'
            cand --node-budget 'How long a node is out (cordon to uncordon) when no past run of this cluster tells; a node is taken out only if it should be back before its window closes (e.g. 15m, 1h)'
            cand --blocking-pod-selector 'No node is taken out while pods matching this label selector exist (repeatable), e.g. `app=backup`'
            cand --blocking-pod-scope 'Where a blocking pod counts: anywhere in the cluster, or on the node about to be taken out'
            cand --prometheus-url 'No node is taken out while this Prometheus server has active alerts (its /api/v1/alerts) that are not filtered out; an unreachable one blocks too'
            cand --alert-filter-regexp 'Ignore the alerts whose name matches this regular expression (with --alert-filter-match-only: only those block)'
            cand --blocker-wait 'Wait this long for the blockers to clear before a node is taken out (re-checking), then stop at that safe point with exit 9 (e.g. 10m, 90s)'
            cand --notify-url 'Send the rollout''s events (run started, node started, node done, node halted or left cordoned, run finished) to this webhook (repeatable): Slack (https://hooks.slack.com/...), a Teams workflow, or a generic JSON webhook (webhook+https://...); slack+ and teams+ prefixes force the service. Never printed'
            cand --notify-template 'The notification text, with fields {event} {cluster} {node} {pool} {kernel_before} {kernel_after} {duration} {reason} {run_id} {text}'
            cand --pushgateway-url 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --query 'JMESPath query applied to the result before formatting (see http://jmespath.org)'
            cand --admin 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one'
            cand --ssh-strict-host-keys 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)'
            cand --one-at-a-time 'Patch one node at a time (the default way; `--one-at-a-time` or `--max-unavailable` is required so that nobody gets a pace by surprise; `--resume` keeps the run''s own)'
            cand --across-zones 'With --max-unavailable: a batch may take nodes of several availability zones'
            cand --dry-run 'Show the plan, the pods each drain would evict and the PDBs that block now; change nothing'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --delete-emptydir-data 'Evict pods with emptyDir volumes (their data is lost), as kubectl drain --delete-emptydir-data'
            cand --force 'Evict pods with no controller (they are not recreated), as kubectl drain --force'
            cand --azure-linux-security-as-all 'On Azure Linux nodes, which classify no update as security, install all updates when `--upgrade-mode security` is asked (otherwise such nodes are refused)'
            cand --allow-azure-linux-2 'Patch Azure Linux 2.0 (CBL-Mariner) nodes, out of support since 30 Nov 2025 (otherwise they are refused; migrate them to Azure Linux 3)'
            cand --allow-pending-pods 'Take a node out even when pods it runs would have nowhere to go (no other schedulable Ready node matches their nodeSelector, required node affinity and tolerations): they stay Pending until it is back. Otherwise the run refuses before any change, or stops before that node''s cordon'
            cand --no-pending-taint 'Do not put the PreferNoSchedule taint aks-patch.io/pending=<run id> on the nodes still to patch (it makes the pods each drain evicts prefer the nodes already patched, so that they move once; it is removed from each node when its turn ends, and from all of them when the run ends)'
            cand --force-unlock 'Take over a lock left behind by a run that died'
            cand --resume 'Continue the last interrupted run of this cluster'
            cand --wait-for-window 'Outside the window, wait for it to open (a countdown on a terminal) instead of exiting 8'
            cand --alert-filter-match-only 'Only the alerts matching --alert-filter-regexp block'
            cand --alert-firing-only 'Only firing alerts block (not pending ones)'
            cand --verbose 'Print more about what is happening (to stderr)'
            cand --debug 'Print everything, including HTTP requests (never their secrets), to stderr'
            cand --only-show-errors 'Print only errors: no warnings, no progress'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aks-patch;report'= {
            cand -g 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount'
            cand --resource-group 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount'
            cand -n 'Name of the AKS cluster'
            cand --name 'Name of the AKS cluster'
            cand --subscription 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI''s current account)'
            cand --kubeconfig 'Work from a kubeconfig alone, without ARM'
            cand --context 'Context in the kubeconfig (default: its current context)'
            cand --auth 'Which credential to use for ARM'
            cand --cloud 'Azure cloud'
            cand --run-record 'Where the run records are read from (see `apply --run-record`)'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --query 'JMESPath query applied to the result before formatting (see http://jmespath.org)'
            cand --admin 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one'
            cand --verbose 'Print more about what is happening (to stderr)'
            cand --debug 'Print everything, including HTTP requests (never their secrets), to stderr'
            cand --only-show-errors 'Print only errors: no warnings, no progress'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aks-patch;help'= {
            cand scan 'Report pending updates, reboot markers and kernels of every Linux node. Changes nothing'
            cand apply 'Upgrade packages and reboot nodes that need it, one node at a time, under a cluster-wide lock'
            cand report 'The nodes as `kubectl get nodes` shows them, with patch state. No SSH: fast'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aks-patch;help;scan'= {
        }
        &'aks-patch;help;apply'= {
        }
        &'aks-patch;help;report'= {
        }
        &'aks-patch;help;help'= {
        }
    ]
    $completions[$command]
}
