
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'aks-patch' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'aks-patch'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'aks-patch' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('scan', 'scan', [CompletionResultType]::ParameterValue, 'Report pending updates, reboot markers and kernels of every Linux node. Changes nothing')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Upgrade packages and reboot nodes that need it, one node at a time, under a cluster-wide lock')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'The nodes as `kubectl get nodes` shows them, with patch state. No SSH: fast')
            [CompletionResult]::new('fleet', 'fleet', [CompletionResultType]::ParameterValue, 'Many clusters at once: scan them, patch them in stages, report on them')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aks-patch;scan' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount')
            [CompletionResult]::new('--resource-group', '--resource-group', [CompletionResultType]::ParameterName, 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name of the AKS cluster')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the AKS cluster')
            [CompletionResult]::new('--subscription', '--subscription', [CompletionResultType]::ParameterName, 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI''s current account)')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Work from a kubeconfig alone, without ARM')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Context in the kubeconfig (default: its current context)')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'Which credential to use for ARM')
            [CompletionResult]::new('--cloud', '--cloud', [CompletionResultType]::ParameterName, 'Azure cloud')
            [CompletionResult]::new('--ssh-user', '--ssh-user', [CompletionResultType]::ParameterName, 'SSH user (default: the cluster''s linuxProfile.adminUsername, else azureuser)')
            [CompletionResult]::new('--ssh-key', '--ssh-key', [CompletionResultType]::ParameterName, 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)')
            [CompletionResult]::new('--ssh-port', '--ssh-port', [CompletionResultType]::ParameterName, 'SSH port on the nodes')
            [CompletionResult]::new('--ssh-jump', '--ssh-jump', [CompletionResultType]::ParameterName, 'Jump host (bastion): user@host[:port]')
            [CompletionResult]::new('--ssh-config', '--ssh-config', [CompletionResultType]::ParameterName, 'An ssh_config file to use')
            [CompletionResult]::new('--ssh-timeout', '--ssh-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for each node''s SSH connection and probe')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)')
            [CompletionResult]::new('--node-shell-image', '--node-shell-image', [CompletionResultType]::ParameterName, 'The node-shell pods'' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`')
            [CompletionResult]::new('--node-shell-namespace', '--node-shell-namespace', [CompletionResultType]::ParameterName, 'The namespace of the node-shell pods (--via kube)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'How many nodes to probe at once')
            [CompletionResult]::new('--fail-on', '--fail-on', [CompletionResultType]::ParameterName, 'Exit with code 6 when a node needs a reboot, or has pending updates')
            [CompletionResult]::new('--pushgateway-url', '--pushgateway-url', [CompletionResultType]::ParameterName, 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'JMESPath query applied to the result before formatting (see http://jmespath.org)')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one')
            [CompletionResult]::new('--ssh-strict-host-keys', '--ssh-strict-host-keys', [CompletionResultType]::ParameterName, 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)')
            [CompletionResult]::new('--refresh', '--refresh', [CompletionResultType]::ParameterName, 'Run `apt-get update` (Azure Linux: `tdnf makecache`) on each node first (otherwise nothing on the nodes changes)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what is happening (to stderr)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print everything, including HTTP requests (never their secrets), to stderr')
            [CompletionResult]::new('--only-show-errors', '--only-show-errors', [CompletionResultType]::ParameterName, 'Print only errors: no warnings, no progress')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aks-patch;apply' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount')
            [CompletionResult]::new('--resource-group', '--resource-group', [CompletionResultType]::ParameterName, 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name of the AKS cluster')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the AKS cluster')
            [CompletionResult]::new('--subscription', '--subscription', [CompletionResultType]::ParameterName, 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI''s current account)')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Work from a kubeconfig alone, without ARM')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Context in the kubeconfig (default: its current context)')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'Which credential to use for ARM')
            [CompletionResult]::new('--cloud', '--cloud', [CompletionResultType]::ParameterName, 'Azure cloud')
            [CompletionResult]::new('--ssh-user', '--ssh-user', [CompletionResultType]::ParameterName, 'SSH user (default: the cluster''s linuxProfile.adminUsername, else azureuser)')
            [CompletionResult]::new('--ssh-key', '--ssh-key', [CompletionResultType]::ParameterName, 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)')
            [CompletionResult]::new('--ssh-port', '--ssh-port', [CompletionResultType]::ParameterName, 'SSH port on the nodes')
            [CompletionResult]::new('--ssh-jump', '--ssh-jump', [CompletionResultType]::ParameterName, 'Jump host (bastion): user@host[:port]')
            [CompletionResult]::new('--ssh-config', '--ssh-config', [CompletionResultType]::ParameterName, 'An ssh_config file to use')
            [CompletionResult]::new('--ssh-timeout', '--ssh-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for each node''s SSH connection and probe')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)')
            [CompletionResult]::new('--node-shell-image', '--node-shell-image', [CompletionResultType]::ParameterName, 'The node-shell pods'' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`')
            [CompletionResult]::new('--node-shell-namespace', '--node-shell-namespace', [CompletionResultType]::ParameterName, 'The namespace of the node-shell pods (--via kube)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'How many nodes the pre-flight (and --dry-run) probes at once, as `scan --parallel`')
            [CompletionResult]::new('--max-unavailable', '--max-unavailable', [CompletionResultType]::ParameterName, 'Patch nodes in batches: at most N nodes (or P% of each pool, rounded down, at least 1) out of service at once, counting nodes out for any other reason; one availability zone at a time, sized so the evicted pods fit on the nodes that stay and no PDB is exceeded')
            [CompletionResult]::new('--nodepool', '--nodepool', [CompletionResultType]::ParameterName, 'Only nodes of these pools (comma-separated or repeated)')
            [CompletionResult]::new('--nodes', '--nodes', [CompletionResultType]::ParameterName, 'Only these nodes (comma-separated or repeated)')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`)')
            [CompletionResult]::new('--selector', '--selector', [CompletionResultType]::ParameterName, 'Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`)')
            [CompletionResult]::new('--upgrade-mode', '--upgrade-mode', [CompletionResultType]::ParameterName, 'Which upgrades to install')
            [CompletionResult]::new('--reboot', '--reboot', [CompletionResultType]::ParameterName, 'When to reboot')
            [CompletionResult]::new('--grace-period', '--grace-period', [CompletionResultType]::ParameterName, 'Grace period for evicted pods, in seconds; -1 (the default) means each pod''s own, as with kubectl drain')
            [CompletionResult]::new('--drain-timeout', '--drain-timeout', [CompletionResultType]::ParameterName, 'Give up draining a node after this many seconds (PDBs that keep refusing)')
            [CompletionResult]::new('--reboot-timeout', '--reboot-timeout', [CompletionResultType]::ParameterName, 'Give up waiting for a rebooted node after this many seconds')
            [CompletionResult]::new('--health-wait', '--health-wait', [CompletionResultType]::ParameterName, 'Before taking a node out, wait up to this many seconds for every other node to be Ready and the last node''s workloads to be Ready again; then stop')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Fail when the Kubernetes API server does not answer the first request within this many seconds')
            [CompletionResult]::new('--soak', '--soak', [CompletionResultType]::ParameterName, 'Wait this long after a node is back before the next one')
            [CompletionResult]::new('--journal-dir', '--journal-dir', [CompletionResultType]::ParameterName, 'Where run records are kept (default: runs/ in the state directory: $AKS_PATCH_STATE_DIR, else $XDG_STATE_HOME/aks-patch, else ~/.local/state/aks-patch)')
            [CompletionResult]::new('--run-record', '--run-record', [CompletionResultType]::ParameterName, 'Where the run record is kept: `file` (in --journal-dir; the default outside a pod) or `cluster` (a ConfigMap per run in the pod''s namespace, or the kubeconfig context''s; the default in a pod with no cluster named, whose files die with it). `--resume` looks in the same place: give the same choice again')
            [CompletionResult]::new('--eviction-retry-interval', '--eviction-retry-interval', [CompletionResultType]::ParameterName, 'Seconds between retries of an eviction refused by a PodDisruptionBudget')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'Take nodes out only inside this window: `DAYS HH:MM-HH:MM` (e.g. `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-02:00`: a range may wrap midnight; days are optional), or `aks` for the cluster''s planned-maintenance schedule (aksManagedNodeOSUpgradeSchedule, else default). Repeatable. Outside it, apply exits 8 with the next opening')
            [CompletionResult]::new('--time-zone', '--time-zone', [CompletionResultType]::ParameterName, 'Time zone of the --window times (IANA name, e.g. Europe/Berlin). Checked even without --window (a script may pass it to every run), where it changes nothing')
            [CompletionResult]::new('--node-budget', '--node-budget', [CompletionResultType]::ParameterName, 'How long a node is out (cordon to uncordon) when no past run of this cluster tells; a node is taken out only if it should be back before its window closes (e.g. 15m, 1h)')
            [CompletionResult]::new('--blocking-pod-selector', '--blocking-pod-selector', [CompletionResultType]::ParameterName, 'No node is taken out while pods matching this label selector exist (repeatable), e.g. `app=backup`')
            [CompletionResult]::new('--blocking-pod-scope', '--blocking-pod-scope', [CompletionResultType]::ParameterName, 'Where a blocking pod counts: anywhere in the cluster, or on the node about to be taken out')
            [CompletionResult]::new('--prometheus-url', '--prometheus-url', [CompletionResultType]::ParameterName, 'No node is taken out while this Prometheus server has active alerts (its /api/v1/alerts) that are not filtered out; an unreachable one blocks too')
            [CompletionResult]::new('--alert-filter-regexp', '--alert-filter-regexp', [CompletionResultType]::ParameterName, 'Ignore the alerts whose name matches this regular expression (with --alert-filter-match-only: only those block)')
            [CompletionResult]::new('--blocker-wait', '--blocker-wait', [CompletionResultType]::ParameterName, 'Wait this long for the blockers to clear before a node is taken out (re-checking), then stop at that safe point with exit 9 (e.g. 10m, 90s)')
            [CompletionResult]::new('--notify-url', '--notify-url', [CompletionResultType]::ParameterName, 'Send the rollout''s events (run started, node started, node done, node halted or left cordoned, run finished) to this webhook (repeatable): Slack (https://hooks.slack.com/...), a Teams workflow, or a generic JSON webhook (webhook+https://...); slack+ and teams+ prefixes force the service. Never printed')
            [CompletionResult]::new('--notify-template', '--notify-template', [CompletionResultType]::ParameterName, 'The notification text, with fields {event} {cluster} {node} {pool} {kernel_before} {kernel_after} {duration} {reason} {run_id} {text}')
            [CompletionResult]::new('--pushgateway-url', '--pushgateway-url', [CompletionResultType]::ParameterName, 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'JMESPath query applied to the result before formatting (see http://jmespath.org)')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one')
            [CompletionResult]::new('--ssh-strict-host-keys', '--ssh-strict-host-keys', [CompletionResultType]::ParameterName, 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)')
            [CompletionResult]::new('--one-at-a-time', '--one-at-a-time', [CompletionResultType]::ParameterName, 'Patch one node at a time (the default way; `--one-at-a-time` or `--max-unavailable` is required so that nobody gets a pace by surprise; `--resume` keeps the run''s own)')
            [CompletionResult]::new('--across-zones', '--across-zones', [CompletionResultType]::ParameterName, 'With --max-unavailable: a batch may take nodes of several availability zones')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the plan, the pods each drain would evict and the PDBs that block now; change nothing')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--delete-emptydir-data', '--delete-emptydir-data', [CompletionResultType]::ParameterName, 'Evict pods with emptyDir volumes (their data is lost), as kubectl drain --delete-emptydir-data')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Evict pods with no controller (they are not recreated), as kubectl drain --force')
            [CompletionResult]::new('--azure-linux-security-as-all', '--azure-linux-security-as-all', [CompletionResultType]::ParameterName, 'On Azure Linux nodes, which classify no update as security, install all updates when `--upgrade-mode security` is asked (otherwise such nodes are refused)')
            [CompletionResult]::new('--allow-azure-linux-2', '--allow-azure-linux-2', [CompletionResultType]::ParameterName, 'Patch Azure Linux 2.0 (CBL-Mariner) nodes, out of support since 30 Nov 2025 (otherwise they are refused; migrate them to Azure Linux 3)')
            [CompletionResult]::new('--allow-pending-pods', '--allow-pending-pods', [CompletionResultType]::ParameterName, 'Take a node out even when pods it runs would have nowhere to go (no other schedulable Ready node matches their nodeSelector, required node affinity and tolerations): they stay Pending until it is back. Otherwise the run refuses before any change, or stops before that node''s cordon')
            [CompletionResult]::new('--no-pending-taint', '--no-pending-taint', [CompletionResultType]::ParameterName, 'Do not put the PreferNoSchedule taint aks-patch.io/pending=<run id> on the nodes still to patch (it makes the pods each drain evicts prefer the nodes already patched, so that they move once; it is removed from each node when its turn ends, and from all of them when the run ends)')
            [CompletionResult]::new('--force-unlock', '--force-unlock', [CompletionResultType]::ParameterName, 'Take over a lock left behind by a run that died')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'Continue the last interrupted run of this cluster')
            [CompletionResult]::new('--resume-or-start', '--resume-or-start', [CompletionResultType]::ParameterName, 'Continue the newest unfinished run of this cluster if there is one (as --resume, its options the record''s), else start a new run: for schedules (the CronJob), so that a run killed half-way is finished by the next')
            [CompletionResult]::new('--wait-for-window', '--wait-for-window', [CompletionResultType]::ParameterName, 'Outside the window, wait for it to open (a countdown on a terminal) instead of exiting 8')
            [CompletionResult]::new('--alert-filter-match-only', '--alert-filter-match-only', [CompletionResultType]::ParameterName, 'Only the alerts matching --alert-filter-regexp block')
            [CompletionResult]::new('--alert-firing-only', '--alert-firing-only', [CompletionResultType]::ParameterName, 'Only firing alerts block (not pending ones)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what is happening (to stderr)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print everything, including HTTP requests (never their secrets), to stderr')
            [CompletionResult]::new('--only-show-errors', '--only-show-errors', [CompletionResultType]::ParameterName, 'Print only errors: no warnings, no progress')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aks-patch;report' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount')
            [CompletionResult]::new('--resource-group', '--resource-group', [CompletionResultType]::ParameterName, 'Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig to patch the pod''s own cluster as its ServiceAccount')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name of the AKS cluster')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of the AKS cluster')
            [CompletionResult]::new('--subscription', '--subscription', [CompletionResultType]::ParameterName, 'Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI''s current account)')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Work from a kubeconfig alone, without ARM')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Context in the kubeconfig (default: its current context)')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'Which credential to use for ARM')
            [CompletionResult]::new('--cloud', '--cloud', [CompletionResultType]::ParameterName, 'Azure cloud')
            [CompletionResult]::new('--run-record', '--run-record', [CompletionResultType]::ParameterName, 'Where the run records are read from (see `apply --run-record`)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'JMESPath query applied to the result before formatting (see http://jmespath.org)')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'Use the cluster admin credential (listClusterAdminCredential) instead of the user one')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what is happening (to stderr)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print everything, including HTTP requests (never their secrets), to stderr')
            [CompletionResult]::new('--only-show-errors', '--only-show-errors', [CompletionResultType]::ParameterName, 'Print only errors: no warnings, no progress')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aks-patch;fleet' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('scan', 'scan', [CompletionResultType]::ParameterValue, 'Scan every chosen cluster at once: one row a cluster (per-node detail with -o json)')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Patch the chosen clusters in stages, each with exactly the rollout of `apply`')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'One row a cluster from the last scans and runs (no SSH)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aks-patch;fleet;scan' {
            [CompletionResult]::new('--subscription', '--subscription', [CompletionResultType]::ParameterName, 'Subscription ID or name to look in (repeatable; default: every subscription the credential can list)')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Only clusters with this tag (repeatable: all must match)')
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Only clusters in this resource group (repeatable)')
            [CompletionResult]::new('--resource-group', '--resource-group', [CompletionResultType]::ParameterName, 'Only clusters in this resource group (repeatable)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Only clusters of these names (repeatable, or a comma list)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only clusters of these names (repeatable, or a comma list)')
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'A Azure Resource Graph condition on the clusters, appended as `| where (CLAUSE)`')
            [CompletionResult]::new('--fleet', '--fleet', [CompletionResultType]::ParameterName, 'The members of an AKS Fleet Manager fleet instead (RG/NAME, in the first --subscription)')
            [CompletionResult]::new('--clusters-file', '--clusters-file', [CompletionResultType]::ParameterName, 'The clusters of a file instead: one resource id a line (`#` comments)')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'Which credential to use for ARM')
            [CompletionResult]::new('--cloud', '--cloud', [CompletionResultType]::ParameterName, 'Azure cloud')
            [CompletionResult]::new('--max-clusters', '--max-clusters', [CompletionResultType]::ParameterName, 'Clusters scanned at once, at most')
            [CompletionResult]::new('--ssh-user', '--ssh-user', [CompletionResultType]::ParameterName, 'SSH user (default: the cluster''s linuxProfile.adminUsername, else azureuser)')
            [CompletionResult]::new('--ssh-key', '--ssh-key', [CompletionResultType]::ParameterName, 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)')
            [CompletionResult]::new('--ssh-port', '--ssh-port', [CompletionResultType]::ParameterName, 'SSH port on the nodes')
            [CompletionResult]::new('--ssh-jump', '--ssh-jump', [CompletionResultType]::ParameterName, 'Jump host (bastion): user@host[:port]')
            [CompletionResult]::new('--ssh-config', '--ssh-config', [CompletionResultType]::ParameterName, 'An ssh_config file to use')
            [CompletionResult]::new('--ssh-timeout', '--ssh-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for each node''s SSH connection and probe')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)')
            [CompletionResult]::new('--node-shell-image', '--node-shell-image', [CompletionResultType]::ParameterName, 'The node-shell pods'' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`')
            [CompletionResult]::new('--node-shell-namespace', '--node-shell-namespace', [CompletionResultType]::ParameterName, 'The namespace of the node-shell pods (--via kube)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'How many nodes to probe at once')
            [CompletionResult]::new('--fail-on', '--fail-on', [CompletionResultType]::ParameterName, 'Exit with code 6 when a node needs a reboot, or has pending updates')
            [CompletionResult]::new('--pushgateway-url', '--pushgateway-url', [CompletionResultType]::ParameterName, 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'JMESPath query applied to the result before formatting (see http://jmespath.org)')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'Use each cluster''s admin credential (listClusterAdminCredential)')
            [CompletionResult]::new('--ssh-strict-host-keys', '--ssh-strict-host-keys', [CompletionResultType]::ParameterName, 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)')
            [CompletionResult]::new('--refresh', '--refresh', [CompletionResultType]::ParameterName, 'Run `apt-get update` (Azure Linux: `tdnf makecache`) on each node first (otherwise nothing on the nodes changes)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what is happening (to stderr)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print everything, including HTTP requests (never their secrets), to stderr')
            [CompletionResult]::new('--only-show-errors', '--only-show-errors', [CompletionResultType]::ParameterName, 'Print only errors: no warnings, no progress')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aks-patch;fleet;apply' {
            [CompletionResult]::new('--subscription', '--subscription', [CompletionResultType]::ParameterName, 'Subscription ID or name to look in (repeatable; default: every subscription the credential can list)')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Only clusters with this tag (repeatable: all must match)')
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Only clusters in this resource group (repeatable)')
            [CompletionResult]::new('--resource-group', '--resource-group', [CompletionResultType]::ParameterName, 'Only clusters in this resource group (repeatable)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Only clusters of these names (repeatable, or a comma list)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only clusters of these names (repeatable, or a comma list)')
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'A Azure Resource Graph condition on the clusters, appended as `| where (CLAUSE)`')
            [CompletionResult]::new('--fleet', '--fleet', [CompletionResultType]::ParameterName, 'The members of an AKS Fleet Manager fleet instead (RG/NAME, in the first --subscription)')
            [CompletionResult]::new('--clusters-file', '--clusters-file', [CompletionResultType]::ParameterName, 'The clusters of a file instead: one resource id a line (`#` comments)')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'Which credential to use for ARM')
            [CompletionResult]::new('--cloud', '--cloud', [CompletionResultType]::ParameterName, 'Azure cloud')
            [CompletionResult]::new('--stage', '--stage', [CompletionResultType]::ParameterName, 'A stage: the clusters whose tags match (KEY=VALUE[,KEY=VALUE]); repeat in order')
            [CompletionResult]::new('--update-strategy', '--update-strategy', [CompletionResultType]::ParameterName, 'The stages of this update strategy of the --fleet (stages of groups, their waits)')
            [CompletionResult]::new('--max-clusters', '--max-clusters', [CompletionResultType]::ParameterName, 'Clusters patched at once, at most (within a stage)')
            [CompletionResult]::new('--stage-wait', '--stage-wait', [CompletionResultType]::ParameterName, 'Soak between stages (e.g. 30m, 1h); a strategy''s own afterStageWaitInSeconds wins')
            [CompletionResult]::new('--ssh-user', '--ssh-user', [CompletionResultType]::ParameterName, 'SSH user (default: the cluster''s linuxProfile.adminUsername, else azureuser)')
            [CompletionResult]::new('--ssh-key', '--ssh-key', [CompletionResultType]::ParameterName, 'Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config)')
            [CompletionResult]::new('--ssh-port', '--ssh-port', [CompletionResultType]::ParameterName, 'SSH port on the nodes')
            [CompletionResult]::new('--ssh-jump', '--ssh-jump', [CompletionResultType]::ParameterName, 'Jump host (bastion): user@host[:port]')
            [CompletionResult]::new('--ssh-config', '--ssh-config', [CompletionResultType]::ParameterName, 'An ssh_config file to use')
            [CompletionResult]::new('--ssh-timeout', '--ssh-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for each node''s SSH connection and probe')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or `run-command` when only ARM is reachable: VM scale set run commands. Inside a pod the default is `kube` (a pod has no SSH path to the nodes)')
            [CompletionResult]::new('--node-shell-image', '--node-shell-image', [CompletionResultType]::ParameterName, 'The node-shell pods'' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`')
            [CompletionResult]::new('--node-shell-namespace', '--node-shell-namespace', [CompletionResultType]::ParameterName, 'The namespace of the node-shell pods (--via kube)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout)')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'How many nodes the pre-flight (and --dry-run) probes at once, as `scan --parallel`')
            [CompletionResult]::new('--max-unavailable', '--max-unavailable', [CompletionResultType]::ParameterName, 'Patch nodes in batches: at most N nodes (or P% of each pool, rounded down, at least 1) out of service at once, counting nodes out for any other reason; one availability zone at a time, sized so the evicted pods fit on the nodes that stay and no PDB is exceeded')
            [CompletionResult]::new('--nodepool', '--nodepool', [CompletionResultType]::ParameterName, 'Only nodes of these pools (comma-separated or repeated)')
            [CompletionResult]::new('--nodes', '--nodes', [CompletionResultType]::ParameterName, 'Only these nodes (comma-separated or repeated)')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`)')
            [CompletionResult]::new('--selector', '--selector', [CompletionResultType]::ParameterName, 'Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`)')
            [CompletionResult]::new('--upgrade-mode', '--upgrade-mode', [CompletionResultType]::ParameterName, 'Which upgrades to install')
            [CompletionResult]::new('--reboot', '--reboot', [CompletionResultType]::ParameterName, 'When to reboot')
            [CompletionResult]::new('--grace-period', '--grace-period', [CompletionResultType]::ParameterName, 'Grace period for evicted pods, in seconds; -1 (the default) means each pod''s own, as with kubectl drain')
            [CompletionResult]::new('--drain-timeout', '--drain-timeout', [CompletionResultType]::ParameterName, 'Give up draining a node after this many seconds (PDBs that keep refusing)')
            [CompletionResult]::new('--reboot-timeout', '--reboot-timeout', [CompletionResultType]::ParameterName, 'Give up waiting for a rebooted node after this many seconds')
            [CompletionResult]::new('--health-wait', '--health-wait', [CompletionResultType]::ParameterName, 'Before taking a node out, wait up to this many seconds for every other node to be Ready and the last node''s workloads to be Ready again; then stop')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Fail when the Kubernetes API server does not answer the first request within this many seconds')
            [CompletionResult]::new('--soak', '--soak', [CompletionResultType]::ParameterName, 'Wait this long after a node is back before the next one')
            [CompletionResult]::new('--journal-dir', '--journal-dir', [CompletionResultType]::ParameterName, 'Where run records are kept (default: runs/ in the state directory: $AKS_PATCH_STATE_DIR, else $XDG_STATE_HOME/aks-patch, else ~/.local/state/aks-patch)')
            [CompletionResult]::new('--run-record', '--run-record', [CompletionResultType]::ParameterName, 'Where the run record is kept: `file` (in --journal-dir; the default outside a pod) or `cluster` (a ConfigMap per run in the pod''s namespace, or the kubeconfig context''s; the default in a pod with no cluster named, whose files die with it). `--resume` looks in the same place: give the same choice again')
            [CompletionResult]::new('--eviction-retry-interval', '--eviction-retry-interval', [CompletionResultType]::ParameterName, 'Seconds between retries of an eviction refused by a PodDisruptionBudget')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'Take nodes out only inside this window: `DAYS HH:MM-HH:MM` (e.g. `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-02:00`: a range may wrap midnight; days are optional), or `aks` for the cluster''s planned-maintenance schedule (aksManagedNodeOSUpgradeSchedule, else default). Repeatable. Outside it, apply exits 8 with the next opening')
            [CompletionResult]::new('--time-zone', '--time-zone', [CompletionResultType]::ParameterName, 'Time zone of the --window times (IANA name, e.g. Europe/Berlin). Checked even without --window (a script may pass it to every run), where it changes nothing')
            [CompletionResult]::new('--node-budget', '--node-budget', [CompletionResultType]::ParameterName, 'How long a node is out (cordon to uncordon) when no past run of this cluster tells; a node is taken out only if it should be back before its window closes (e.g. 15m, 1h)')
            [CompletionResult]::new('--blocking-pod-selector', '--blocking-pod-selector', [CompletionResultType]::ParameterName, 'No node is taken out while pods matching this label selector exist (repeatable), e.g. `app=backup`')
            [CompletionResult]::new('--blocking-pod-scope', '--blocking-pod-scope', [CompletionResultType]::ParameterName, 'Where a blocking pod counts: anywhere in the cluster, or on the node about to be taken out')
            [CompletionResult]::new('--prometheus-url', '--prometheus-url', [CompletionResultType]::ParameterName, 'No node is taken out while this Prometheus server has active alerts (its /api/v1/alerts) that are not filtered out; an unreachable one blocks too')
            [CompletionResult]::new('--alert-filter-regexp', '--alert-filter-regexp', [CompletionResultType]::ParameterName, 'Ignore the alerts whose name matches this regular expression (with --alert-filter-match-only: only those block)')
            [CompletionResult]::new('--blocker-wait', '--blocker-wait', [CompletionResultType]::ParameterName, 'Wait this long for the blockers to clear before a node is taken out (re-checking), then stop at that safe point with exit 9 (e.g. 10m, 90s)')
            [CompletionResult]::new('--notify-url', '--notify-url', [CompletionResultType]::ParameterName, 'Send the rollout''s events (run started, node started, node done, node halted or left cordoned, run finished) to this webhook (repeatable): Slack (https://hooks.slack.com/...), a Teams workflow, or a generic JSON webhook (webhook+https://...); slack+ and teams+ prefixes force the service. Never printed')
            [CompletionResult]::new('--notify-template', '--notify-template', [CompletionResultType]::ParameterName, 'The notification text, with fields {event} {cluster} {node} {pool} {kernel_before} {kernel_after} {duration} {reason} {run_id} {text}')
            [CompletionResult]::new('--pushgateway-url', '--pushgateway-url', [CompletionResultType]::ParameterName, 'Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'JMESPath query applied to the result before formatting (see http://jmespath.org)')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'Use each cluster''s admin credential (listClusterAdminCredential)')
            [CompletionResult]::new('--continue-stage', '--continue-stage', [CompletionResultType]::ParameterName, 'A failed cluster lets the others of its stage finish (later stages still do not start)')
            [CompletionResult]::new('--ssh-strict-host-keys', '--ssh-strict-host-keys', [CompletionResultType]::ParameterName, 'Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones)')
            [CompletionResult]::new('--one-at-a-time', '--one-at-a-time', [CompletionResultType]::ParameterName, 'Patch one node at a time (the default way; `--one-at-a-time` or `--max-unavailable` is required so that nobody gets a pace by surprise; `--resume` keeps the run''s own)')
            [CompletionResult]::new('--across-zones', '--across-zones', [CompletionResultType]::ParameterName, 'With --max-unavailable: a batch may take nodes of several availability zones')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the plan, the pods each drain would evict and the PDBs that block now; change nothing')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--delete-emptydir-data', '--delete-emptydir-data', [CompletionResultType]::ParameterName, 'Evict pods with emptyDir volumes (their data is lost), as kubectl drain --delete-emptydir-data')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Evict pods with no controller (they are not recreated), as kubectl drain --force')
            [CompletionResult]::new('--azure-linux-security-as-all', '--azure-linux-security-as-all', [CompletionResultType]::ParameterName, 'On Azure Linux nodes, which classify no update as security, install all updates when `--upgrade-mode security` is asked (otherwise such nodes are refused)')
            [CompletionResult]::new('--allow-azure-linux-2', '--allow-azure-linux-2', [CompletionResultType]::ParameterName, 'Patch Azure Linux 2.0 (CBL-Mariner) nodes, out of support since 30 Nov 2025 (otherwise they are refused; migrate them to Azure Linux 3)')
            [CompletionResult]::new('--allow-pending-pods', '--allow-pending-pods', [CompletionResultType]::ParameterName, 'Take a node out even when pods it runs would have nowhere to go (no other schedulable Ready node matches their nodeSelector, required node affinity and tolerations): they stay Pending until it is back. Otherwise the run refuses before any change, or stops before that node''s cordon')
            [CompletionResult]::new('--no-pending-taint', '--no-pending-taint', [CompletionResultType]::ParameterName, 'Do not put the PreferNoSchedule taint aks-patch.io/pending=<run id> on the nodes still to patch (it makes the pods each drain evicts prefer the nodes already patched, so that they move once; it is removed from each node when its turn ends, and from all of them when the run ends)')
            [CompletionResult]::new('--force-unlock', '--force-unlock', [CompletionResultType]::ParameterName, 'Take over a lock left behind by a run that died')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'Continue the last interrupted run of this cluster')
            [CompletionResult]::new('--resume-or-start', '--resume-or-start', [CompletionResultType]::ParameterName, 'Continue the newest unfinished run of this cluster if there is one (as --resume, its options the record''s), else start a new run: for schedules (the CronJob), so that a run killed half-way is finished by the next')
            [CompletionResult]::new('--wait-for-window', '--wait-for-window', [CompletionResultType]::ParameterName, 'Outside the window, wait for it to open (a countdown on a terminal) instead of exiting 8')
            [CompletionResult]::new('--alert-filter-match-only', '--alert-filter-match-only', [CompletionResultType]::ParameterName, 'Only the alerts matching --alert-filter-regexp block')
            [CompletionResult]::new('--alert-firing-only', '--alert-firing-only', [CompletionResultType]::ParameterName, 'Only firing alerts block (not pending ones)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what is happening (to stderr)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print everything, including HTTP requests (never their secrets), to stderr')
            [CompletionResult]::new('--only-show-errors', '--only-show-errors', [CompletionResultType]::ParameterName, 'Print only errors: no warnings, no progress')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aks-patch;fleet;report' {
            [CompletionResult]::new('--subscription', '--subscription', [CompletionResultType]::ParameterName, 'Subscription ID or name to look in (repeatable; default: every subscription the credential can list)')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Only clusters with this tag (repeatable: all must match)')
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Only clusters in this resource group (repeatable)')
            [CompletionResult]::new('--resource-group', '--resource-group', [CompletionResultType]::ParameterName, 'Only clusters in this resource group (repeatable)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Only clusters of these names (repeatable, or a comma list)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Only clusters of these names (repeatable, or a comma list)')
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'A Azure Resource Graph condition on the clusters, appended as `| where (CLAUSE)`')
            [CompletionResult]::new('--fleet', '--fleet', [CompletionResultType]::ParameterName, 'The members of an AKS Fleet Manager fleet instead (RG/NAME, in the first --subscription)')
            [CompletionResult]::new('--clusters-file', '--clusters-file', [CompletionResultType]::ParameterName, 'The clusters of a file instead: one resource id a line (`#` comments)')
            [CompletionResult]::new('--auth', '--auth', [CompletionResultType]::ParameterName, 'Which credential to use for ARM')
            [CompletionResult]::new('--cloud', '--cloud', [CompletionResultType]::ParameterName, 'Azure cloud')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--query', '--query', [CompletionResultType]::ParameterName, 'JMESPath query applied to the result before formatting (see http://jmespath.org)')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'Use each cluster''s admin credential (listClusterAdminCredential)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what is happening (to stderr)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print everything, including HTTP requests (never their secrets), to stderr')
            [CompletionResult]::new('--only-show-errors', '--only-show-errors', [CompletionResultType]::ParameterName, 'Print only errors: no warnings, no progress')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aks-patch;fleet;help' {
            [CompletionResult]::new('scan', 'scan', [CompletionResultType]::ParameterValue, 'Scan every chosen cluster at once: one row a cluster (per-node detail with -o json)')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Patch the chosen clusters in stages, each with exactly the rollout of `apply`')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'One row a cluster from the last scans and runs (no SSH)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aks-patch;fleet;help;scan' {
            break
        }
        'aks-patch;fleet;help;apply' {
            break
        }
        'aks-patch;fleet;help;report' {
            break
        }
        'aks-patch;fleet;help;help' {
            break
        }
        'aks-patch;help' {
            [CompletionResult]::new('scan', 'scan', [CompletionResultType]::ParameterValue, 'Report pending updates, reboot markers and kernels of every Linux node. Changes nothing')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Upgrade packages and reboot nodes that need it, one node at a time, under a cluster-wide lock')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'The nodes as `kubectl get nodes` shows them, with patch state. No SSH: fast')
            [CompletionResult]::new('fleet', 'fleet', [CompletionResultType]::ParameterValue, 'Many clusters at once: scan them, patch them in stages, report on them')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aks-patch;help;scan' {
            break
        }
        'aks-patch;help;apply' {
            break
        }
        'aks-patch;help;report' {
            break
        }
        'aks-patch;help;fleet' {
            [CompletionResult]::new('scan', 'scan', [CompletionResultType]::ParameterValue, 'Scan every chosen cluster at once: one row a cluster (per-node detail with -o json)')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Patch the chosen clusters in stages, each with exactly the rollout of `apply`')
            [CompletionResult]::new('report', 'report', [CompletionResultType]::ParameterValue, 'One row a cluster from the last scans and runs (no SSH)')
            break
        }
        'aks-patch;help;fleet;scan' {
            break
        }
        'aks-patch;help;fleet;apply' {
            break
        }
        'aks-patch;help;fleet;report' {
            break
        }
        'aks-patch;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
