# The registry allow-list of the Kubernetes documentation's OPA sketch, done
# right. The sketch compares an image with "trusted-registry.io/*" by string
# equality, which matches nothing; a naive fix with startswith() would let
# "trusted-registry.io.evil.com/x" through. Here each image is matched, as
# imagegate normalised it (nginx -> docker.io/library/nginx:latest), with
# glob.match and "/" as the delimiter: "*" stays within one path component,
# "**" crosses them, and the host must match as a whole component.
#
# input.images lists every image of the request at every door (admission,
# imagepolicy, check); at the admission door input.review (Gatekeeper) and
# input.request (plain OPA) hold the AdmissionReview request too.
package kubernetes.admission

import rego.v1

allowed_registries := [
	"trusted-registry.io/**",
	"docker.io/library/**",
	"ghcr.io/corp/**",
]

default allow := false

allow if {
	every image in input.images {
		allowed(image)
	}
}

allowed(image) if {
	some pattern in allowed_registries
	glob.match(pattern, ["/"], concat("/", [lower(image.registry), image.repository]))
}

deny contains msg if {
	some image in input.images
	not allowed(image)
	msg := sprintf("image %s is not from an allowed registry", [image.image])
}
