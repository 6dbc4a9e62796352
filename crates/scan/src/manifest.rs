//! Where images live in Kubernetes objects. The admission door and
//! `imagegate scan` both ask this module, so they cannot disagree about which
//! containers a workload has.

use serde_json::Value;

use crate::yaml::{Node, Value as YamlValue};

/// The container lists of a Pod spec, in the order they are reported.
pub const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// A workload kind whose objects carry a Pod spec, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The kind.
    pub kind: &'static str,
    /// The resource (plural) that admission rules name.
    pub resource: &'static str,
    /// The path from the object to its Pod spec, or to what holds its
    /// container lists: empty for `EphemeralContainers`, which holds
    /// `ephemeralContainers` itself.
    pub pod_spec: &'static [&'static str],
}

/// Every kind that carries a Pod spec (or a Pod's containers), with the
/// path to it.
pub const WORKLOADS: [Workload; 10] = [
    Workload {
        group: "",
        kind: "Pod",
        resource: "pods",
        pod_spec: &["spec"],
    },
    // `kubectl debug` adds containers through the `pods/ephemeralcontainers`
    // subresource. Kubernetes 1.16 to 1.22 send it as this kind (v1): the
    // object is `{metadata, ephemeralContainers: [...]}`, not a Pod; from
    // 1.23 it is a Pod.
    Workload {
        group: "",
        kind: "EphemeralContainers",
        resource: "pods/ephemeralcontainers",
        pod_spec: &[],
    },
    Workload {
        group: "",
        kind: "PodTemplate",
        resource: "podtemplates",
        pod_spec: &["template", "spec"],
    },
    Workload {
        group: "",
        kind: "ReplicationController",
        resource: "replicationcontrollers",
        pod_spec: &["spec", "template", "spec"],
    },
    Workload {
        group: "apps",
        kind: "Deployment",
        resource: "deployments",
        pod_spec: &["spec", "template", "spec"],
    },
    Workload {
        group: "apps",
        kind: "ReplicaSet",
        resource: "replicasets",
        pod_spec: &["spec", "template", "spec"],
    },
    Workload {
        group: "apps",
        kind: "StatefulSet",
        resource: "statefulsets",
        pod_spec: &["spec", "template", "spec"],
    },
    Workload {
        group: "apps",
        kind: "DaemonSet",
        resource: "daemonsets",
        pod_spec: &["spec", "template", "spec"],
    },
    Workload {
        group: "batch",
        kind: "Job",
        resource: "jobs",
        pod_spec: &["spec", "template", "spec"],
    },
    Workload {
        group: "batch",
        kind: "CronJob",
        resource: "cronjobs",
        pod_spec: &["spec", "jobTemplate", "spec", "template", "spec"],
    },
];

/// The workload for a group and kind, if objects of that kind carry a Pod spec.
///
/// ```
/// use imagegate_scan::manifest::workload;
/// assert_eq!(workload("batch", "CronJob").unwrap().pod_spec, ["spec", "jobTemplate", "spec", "template", "spec"]);
/// assert!(workload("", "EphemeralContainers").unwrap().pod_spec.is_empty());
/// assert!(workload("", "ConfigMap").is_none());
/// ```
pub fn workload(group: &str, kind: &str) -> Option<&'static Workload> {
    WORKLOADS
        .iter()
        .find(|w| w.group == group && w.kind == kind)
}

/// One place an image is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSite {
    /// The container's path in the object: `spec.template.spec.initContainers[0]`.
    pub path: String,
    /// The container's name, if it has one.
    pub container: Option<String>,
    /// The image as written.
    pub image: String,
}

/// A container entry that is not shaped as Kubernetes requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// Where: `spec.containers[1].image`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every image in `object`, a `workload` object, in container order
/// (init containers, containers, ephemeral containers). A container without an
/// image, or an image that is not a string, is a [`ShapeError`]: an image that
/// cannot be read is never skipped silently.
///
/// ```
/// use imagegate_scan::manifest::{image_sites, workload};
/// let deployment = serde_json::json!({"spec": {"template": {"spec": {
///     "initContainers": [{"name": "setup", "image": "busybox"}],
///     "containers": [{"name": "app", "image": "nginx:1.25"}]}}}});
/// let sites = image_sites(workload("apps", "Deployment").unwrap(), &deployment).unwrap();
/// assert_eq!(sites[0].path, "spec.template.spec.initContainers[0]");
/// assert_eq!(sites[1].image, "nginx:1.25");
/// ```
pub fn image_sites(workload: &Workload, object: &Value) -> Result<Vec<ImageSite>, ShapeError> {
    let mut spec = object;
    let mut path = String::new();
    for (i, key) in workload.pod_spec.iter().enumerate() {
        if i > 0 {
            path.push('.');
        }
        path.push_str(key);
        match spec.get(key) {
            Some(next) if next.is_object() => spec = next,
            Some(Value::Null) | None => return Ok(Vec::new()),
            Some(_) => {
                return Err(ShapeError {
                    path,
                    message: "must be an object".to_owned(),
                });
            }
        }
    }
    // `spec.containers`, or `ephemeralContainers` at the top of the object.
    let under = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    let mut sites = Vec::new();
    for list in CONTAINER_LISTS {
        let containers = match spec.get(list) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(ShapeError {
                    path: under(list),
                    message: "must be a list".to_owned(),
                });
            }
        };
        for (i, container) in containers.iter().enumerate() {
            let at = under(&format!("{list}[{i}]"));
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match container.get("image") {
                Some(Value::String(image)) => sites.push(ImageSite {
                    path: at,
                    container: name,
                    image: image.clone(),
                }),
                None | Some(Value::Null) => {
                    return Err(ShapeError {
                        path: format!("{at}.image"),
                        message: "container has no image".to_owned(),
                    });
                }
                Some(_) => {
                    return Err(ShapeError {
                        path: format!("{at}.image"),
                        message: "image must be a string".to_owned(),
                    });
                }
            }
        }
    }
    Ok(sites)
}

/// An image named by a Kubernetes object in a manifest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestImage {
    /// `Kind/name` of the object (`Deployment/web`; `Deployment` without a name).
    pub object: String,
    /// Where in the object: `spec.template.spec.containers[0].image`.
    pub path: String,
    /// 1-based line of the image value.
    pub line: usize,
    /// 1-based column of the image value.
    pub column: usize,
    /// The image as written.
    pub image: String,
    /// The object's `metadata.namespace`, when it names one.
    pub namespace: Option<String>,
}

/// A workload in a manifest file whose containers cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestProblem {
    /// `Kind/name` of the object.
    pub object: String,
    /// 1-based line of the offending value (or the nearest one that exists).
    pub line: usize,
    /// 1-based column of the offending value.
    pub column: usize,
    /// What is wrong, with its path in the object.
    pub error: ShapeError,
}

/// What a manifest document holds: its images, and workloads that cannot be
/// read (never skipped silently).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestImages {
    /// How many Kubernetes objects the document held (a `List` counts its items).
    pub objects: usize,
    /// Every image of every workload, in document order.
    pub images: Vec<ManifestImage>,
    /// Workloads whose containers are not shaped as Kubernetes requires.
    pub problems: Vec<ManifestProblem>,
}

/// The images of one YAML or JSON document holding a Kubernetes object, a
/// `List` (`kind: List`, `DeploymentList`, ...) of them, or neither (a
/// document without `apiVersion` and `kind` is not a Kubernetes object: it
/// yields nothing). Which containers a workload has is [`image_sites`]'s
/// answer, the admission door's.
///
/// ```
/// use imagegate_scan::{manifest::manifest_images, yaml::documents};
/// let docs = documents("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - name: c\n              image: busybox\n").unwrap();
/// let found = manifest_images(&docs[0]);
/// assert_eq!(found.images[0].object, "CronJob/nightly");
/// assert_eq!((found.images[0].line, found.images[0].column), (11, 22));
/// ```
pub fn manifest_images(document: &Node) -> ManifestImages {
    let mut found = ManifestImages::default();
    collect(document, None, &mut found);
    found
}

fn collect(object: &Node, implied_kind: Option<&str>, found: &mut ManifestImages) {
    let api_version = object.get("apiVersion").and_then(Node::as_str);
    let Some(kind) = object.get("kind").and_then(Node::as_str).or(implied_kind) else {
        return;
    };
    if let (Some(list), Some(YamlValue::Seq(items))) = (
        kind.strip_suffix("List"),
        object.get("items").map(|n| &n.value),
    ) {
        let implied = Some(list).filter(|l| !l.is_empty());
        for item in items {
            collect(item, implied, found);
        }
        return;
    }
    let w = match api_version {
        Some(v) => workload(v.split_once('/').map_or("", |(group, _)| group), kind),
        // An item of a typed list (`DeploymentList`) may leave out its
        // apiVersion and kind: the list's kind names them.
        None if implied_kind.is_some() => WORKLOADS.iter().find(|w| w.kind == kind),
        None => return,
    };
    found.objects += 1;
    if let Some(w) = w {
        images_of(w, object, kind, found);
    }
}

fn images_of(w: &Workload, object: &Node, kind: &str, found: &mut ManifestImages) {
    let metadata = object.get("metadata");
    let name = metadata.and_then(|m| m.get("name")).and_then(Node::as_str);
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Node::as_str);
    let label = match name {
        Some(n) => format!("{kind}/{n}"),
        None => kind.to_owned(),
    };
    match image_sites(w, &object.to_json()) {
        Ok(sites) => {
            for site in sites {
                let path = format!("{}.image", site.path);
                let at = object.locate(&path);
                found.images.push(ManifestImage {
                    object: label.clone(),
                    path,
                    line: at.line,
                    column: at.column,
                    image: site.image,
                    namespace: namespace.map(str::to_owned),
                });
            }
        }
        Err(error) => {
            let at = object.locate(&error.path);
            found.problems.push(ManifestProblem {
                object: label,
                line: at.line,
                column: at.column,
                error,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn case_cronjob_images_are_under_the_job_template() {
        let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}});
        let sites = image_sites(workload("batch", "CronJob").unwrap(), &cj).unwrap();
        assert_eq!(
            sites,
            [ImageSite {
                path: "spec.jobTemplate.spec.template.spec.containers[0]".into(),
                container: Some("c".into()),
                image: "x".into()
            }]
        );
    }

    #[test]
    fn case_pod_lists_init_containers_then_containers_then_ephemeral() {
        let pod = json!({"spec": {
            "containers": [{"name": "app", "image": "a"}],
            "ephemeralContainers": [{"name": "debugger", "image": "e"}],
            "initContainers": [{"name": "setup", "image": "i"}]}});
        let sites = image_sites(workload("", "Pod").unwrap(), &pod).unwrap();
        let paths: Vec<&str> = sites.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.initContainers[0]",
                "spec.containers[0]",
                "spec.ephemeralContainers[0]"
            ]
        );
    }

    #[test]
    fn case_old_ephemeral_containers_kind_has_its_list_at_the_top() {
        // What Kubernetes 1.16 to 1.22 send for pods/ephemeralcontainers.
        let ec = json!({
            "kind": "EphemeralContainers",
            "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default"},
            "ephemeralContainers": [
                {"name": "debugger", "image": "busybox", "targetContainerName": "app"},
                {"name": "shell", "image": "someuser/toolbox:latest"}]});
        let w = workload("", "EphemeralContainers").unwrap();
        assert_eq!(w.resource, "pods/ephemeralcontainers");
        let sites = image_sites(w, &ec).unwrap();
        assert_eq!(
            sites,
            [
                ImageSite {
                    path: "ephemeralContainers[0]".into(),
                    container: Some("debugger".into()),
                    image: "busybox".into()
                },
                ImageSite {
                    path: "ephemeralContainers[1]".into(),
                    container: Some("shell".into()),
                    image: "someuser/toolbox:latest".into()
                }
            ]
        );
        let e = image_sites(w, &json!({"ephemeralContainers": [{"name": "d"}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ephemeralContainers[0].image: container has no image"
        );
        let e = image_sites(w, &json!({"ephemeralContainers": {"image": "x"}})).unwrap_err();
        assert_eq!(e.path, "ephemeralContainers");
        assert_eq!(
            image_sites(w, &json!({"ephemeralContainers": null})).unwrap(),
            []
        );
    }

    #[test]
    fn case_a_manifest_of_the_old_ephemeral_containers_kind_is_scanned() {
        let docs = crate::yaml::documents(
            "apiVersion: v1\nkind: EphemeralContainers\nmetadata: {name: web}\nephemeralContainers:\n  - name: debugger\n    image: busybox\n",
        )
        .unwrap();
        let found = manifest_images(&docs[0]);
        assert_eq!(found.problems, []);
        assert_eq!(found.images.len(), 1);
        let image = &found.images[0];
        assert_eq!(image.object, "EphemeralContainers/web");
        assert_eq!(image.path, "ephemeralContainers[0].image");
        assert_eq!((image.line, image.column), (6, 12));
    }

    #[test]
    fn case_missing_or_mistyped_images_are_errors_not_skips() {
        let w = workload("", "Pod").unwrap();
        let e = image_sites(w, &json!({"spec": {"containers": [{"name": "a"}]}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.containers[0].image: container has no image"
        );
        let e = image_sites(w, &json!({"spec": {"containers": [{"image": 5}]}})).unwrap_err();
        assert_eq!(e.path, "spec.containers[0].image");
        let e = image_sites(w, &json!({"spec": {"containers": {"image": "x"}}})).unwrap_err();
        assert_eq!(e.path, "spec.containers");
        let e = image_sites(w, &json!({"spec": "nope"})).unwrap_err();
        assert_eq!(e.path, "spec");
    }

    #[test]
    fn case_podtemplate_has_its_spec_under_template() {
        let pt = json!({"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}});
        let sites = image_sites(workload("", "PodTemplate").unwrap(), &pt).unwrap();
        assert_eq!(sites[0].path, "template.spec.containers[0]");
    }
}
