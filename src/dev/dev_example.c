/* The first thing to try: an application that needs no registry and a deployment that
 * selects every dev site by its env=dev label. */
#include <stdlib.h>
#include <string.h>

#include "dev/dev-internal.h"

char *sk_dev_example_yaml(void)
{
        return strdup("# Written by `skerry dev`. Try:\n"
                      "#   skerry apply -f example.yaml && skerry get deployment example -o yaml\n"
                      "kind: application\n"
                      "name: example\n"
                      "version: \"1.0.0\"\n"
                      "services:\n"
                      "  - name: hello\n"
                      "    replicas: 1\n"
                      "    containers:\n"
                      "      - name: hello\n"
                      "        image: localhost/busybox:latest\n"
                      "        cmd: [\"sh\", \"-c\", \"while true; do echo hello from skerry; "
                      "sleep 5; done\"]\n"
                      "        restart: always\n"
                      "---\n"
                      "kind: deployment\n"
                      "name: example\n"
                      "application: example\n"
                      "version: \"*\"\n"
                      "sites: env = dev\n");
}
