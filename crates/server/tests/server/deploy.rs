//! Every manifest under deploy/ deserialises into its k8s-openapi type (and
//! back, unchanged, so a misspelt field cannot hide), and the webhook
//! configuration's rules cover exactly the kinds the server inspects.

use std::collections::BTreeSet;

use imagegate_scan::manifest::WORKLOADS;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");

#[derive(Default)]
struct Objects {
    namespaces: Vec<Namespace>,
    config_maps: Vec<ConfigMap>,
    service_accounts: Vec<ServiceAccount>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    pdbs: Vec<PodDisruptionBudget>,
    webhooks: Vec<ValidatingWebhookConfiguration>,
}

/// Deserialises into `T` and checks that serialising gives the document back.
fn typed<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) -> T {
    let value: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_json::to_value(&value).unwrap();
    assert_eq!(
        &back, doc,
        "{file}: fields k8s-openapi does not know (a typo?) were dropped"
    );
    value
}

fn load() -> Objects {
    let mut objects = Objects::default();
    let mut files: Vec<_> = std::fs::read_dir(format!("{DEPLOY}/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            match doc["kind"].as_str().unwrap_or_default() {
                "Namespace" => objects.namespaces.push(typed(&file, &doc)),
                "ConfigMap" => objects.config_maps.push(typed(&file, &doc)),
                "ServiceAccount" => objects.service_accounts.push(typed(&file, &doc)),
                "Deployment" => objects.deployments.push(typed(&file, &doc)),
                "Service" => objects.services.push(typed(&file, &doc)),
                "PodDisruptionBudget" => objects.pdbs.push(typed(&file, &doc)),
                "ValidatingWebhookConfiguration" => objects.webhooks.push(typed(&file, &doc)),
                other => panic!("{file}: no test knows kind {other:?}"),
            }
        }
    }
    objects
}

#[test]
fn every_manifest_deserialises_into_its_kubernetes_type() {
    let o = load();
    assert_eq!(o.namespaces.len(), 1);
    assert_eq!(o.deployments.len(), 1);
    assert_eq!(o.services.len(), 1);
    assert_eq!(o.pdbs.len(), 1);
    assert_eq!(o.webhooks.len(), 1);
    assert_eq!(o.config_maps.len(), 1);
    assert_eq!(o.service_accounts.len(), 1);
}

#[test]
fn the_webhook_rules_cover_exactly_the_kinds_the_server_inspects() {
    let o = load();
    let webhook = &o.webhooks[0].webhooks.as_ref().unwrap()[0];
    let mut covered = BTreeSet::new();
    for rule in webhook.rules.as_ref().unwrap() {
        let ops: BTreeSet<&str> = rule
            .operations
            .as_ref()
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(ops, BTreeSet::from(["CREATE", "UPDATE"]));
        assert_eq!(rule.api_versions.as_deref(), Some(&["v1".to_owned()][..]));
        for group in rule.api_groups.as_ref().unwrap() {
            for resource in rule.resources.as_ref().unwrap() {
                covered.insert((group.clone(), resource.clone()));
            }
        }
    }
    // `kubectl debug`'s pods/ephemeralcontainers is among them: the
    // EphemeralContainers kind names it (a Pod from Kubernetes 1.23 on).
    let inspected: BTreeSet<(String, String)> = WORKLOADS
        .iter()
        .map(|w| (w.group.to_owned(), w.resource.to_owned()))
        .collect();
    assert!(inspected.contains(&(String::new(), "pods/ephemeralcontainers".to_owned())));
    assert_eq!(covered, inspected);
}

#[test]
fn the_webhook_is_configured_as_the_readme_says() {
    let o = load();
    let webhook = &o.webhooks[0].webhooks.as_ref().unwrap()[0];
    let timeout = webhook.timeout_seconds.unwrap();
    assert!((3..=5).contains(&timeout), "timeoutSeconds {timeout}");
    assert_eq!(webhook.side_effects, "None");
    assert_eq!(webhook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(webhook.match_policy.as_deref(), Some("Equivalent"));
    assert!(webhook.admission_review_versions.contains(&"v1".to_owned()));
    let service = webhook.client_config.service.as_ref().unwrap();
    assert_eq!(service.path.as_deref(), Some("/admission/validate"));
    let svc = &o.services[0];
    assert_eq!(Some(&service.name), svc.metadata.name.as_ref());
    assert_eq!(Some(&service.namespace), svc.metadata.namespace.as_ref());
    let excluded = webhook
        .namespace_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap();
    assert!(
        excluded
            .iter()
            .any(|e| e.key == "kubernetes.io/metadata.name"
                && e.operator == "NotIn"
                && e.values
                    .as_ref()
                    .unwrap()
                    .contains(svc.metadata.namespace.as_ref().unwrap())),
        "the webhook's own namespace is excluded"
    );
}

#[test]
fn the_deployment_runs_two_hardened_replicas_with_probes() {
    let o = load();
    let d = &o.deployments[0];
    let spec = &d.spec;
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert!(
        c.resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()
            .contains_key("memory")
    );
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        c.args.as_deref(),
        Some(
            &[
                "serve".to_owned(),
                "--config".to_owned(),
                "/etc/imagegate/serve.yaml".to_owned()
            ][..]
        )
    );
    assert!(o.pdbs[0].spec.as_ref().unwrap().min_available.is_some());
}

#[test]
fn the_config_map_holds_a_config_and_a_policy_that_load() {
    let o = load();
    let data = o.config_maps[0].data.as_ref().unwrap();
    let config = imagegate_server::config::FileConfig::parse(&data["serve.yaml"]).unwrap();
    assert_eq!(
        config.policy.as_deref(),
        Some(std::path::Path::new("/etc/imagegate/policy.yaml"))
    );
    imagegate_core::Policy::load(&data["policy.yaml"]).unwrap();
}

#[test]
fn the_image_policy_webhook_configuration_names_its_kubeconfig_and_ttls() {
    let text =
        std::fs::read_to_string(format!("{DEPLOY}/imagepolicywebhook/admission-config.yaml"))
            .unwrap();
    let config: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(config["kind"], "AdmissionConfiguration");
    let plugin = &config["plugins"][0];
    assert_eq!(plugin["name"], "ImagePolicyWebhook");
    let policy = &plugin["configuration"]["imagePolicy"];
    for key in ["allowTTL", "denyTTL", "retryBackoff"] {
        assert!(policy[key].as_u64().is_some_and(|v| v > 0), "{key}");
    }
    assert_eq!(policy["defaultAllow"], false);
    assert!(
        policy["kubeConfigFile"]
            .as_str()
            .unwrap()
            .ends_with("/kubeconfig.yaml")
    );
    let text =
        std::fs::read_to_string(format!("{DEPLOY}/imagepolicywebhook/kubeconfig.yaml")).unwrap();
    let kubeconfig: Value = serde_saphyr::from_str(&text).unwrap();
    assert!(
        kubeconfig["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .ends_with("/imagepolicy")
    );
}
