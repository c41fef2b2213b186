#!/bin/sh
# Register Nova Steward in Keystone: its service (type `scheduler-steward`, which the
# `openstack steward` CLI plugin looks up in the catalog), its endpoints, and the user steward
# reads Nova and Placement with. Run with cloud-admin credentials (`--os-cloud admin` or OS_*):
#
#   STEWARD_PUBLIC_URL=https://steward.example.org:8790 \
#   STEWARD_INTERNAL_URL=http://steward.steward.svc:8790 \
#   STEWARD_PASSWORD_FILE=/root/steward-keystone-password \
#     sh etc/keystone/register-steward.sh
#
# Least privilege. Steward's service user gets the role `steward_reader` only. Every read steward
# makes (all projects' servers with their host, hypervisors, aggregates, all server groups,
# Placement providers, inventories, usages, allocations) is admin-only in Nova's and Placement's
# default policy: plain `reader` on a project cannot see another project's servers or any
# hypervisor. So steward_reader implies `reader` (Keystone-level reads) and the two policy files
# beside this script grant it exactly those read rules, nothing that writes (other projects'
# server groups stay admin-only: Nova checks that in code; see nova-policy.steward.yaml):
#   etc/keystone/nova-policy.steward.yaml       -> merge into Nova's policy.yaml
#   etc/keystone/placement-policy.steward.yaml  -> merge into Placement's policy.yaml
# Writes are opt-in and separate:
#   STEWARD_MIGRATOR=1    role `steward_migrator` for the rebalancer in `approve`/`auto` mode
#                         (live migration, list and abort migrations; same policy files).
#   STEWARD_VALIDATE_TOKENS=1  role `service` for steward's user, needed when steward runs with
#                         [auth] strategy = "keystone" (Keystone lets a service validate others'
#                         tokens). Mind that Placement's defaults let `service` write too: where
#                         that matters, keep [auth] strategy = "static".
#   STEWARD_REPAIR_USER=1 a second user `steward-repair` with `admin` on the service project,
#                         for the one-shot inventory repair only (flavor extra specs, Placement
#                         inventories and allocations, resource classes). Use its credentials
#                         for `steward repair apply|rollback` and disable it afterwards:
#                         `openstack user set --disable steward-repair`.
# Passwords are read from files, never given on the command line or kept in this file.
set -eu

OPENSTACK=${OPENSTACK:-openstack}
REGION=${STEWARD_REGION:-RegionOne}
DOMAIN=${STEWARD_DOMAIN:-Default}
PROJECT=${STEWARD_PROJECT:-service}
PUBLIC_URL=${STEWARD_PUBLIC_URL:?set STEWARD_PUBLIC_URL, e.g. https://steward.example.org:8790}
INTERNAL_URL=${STEWARD_INTERNAL_URL:-$PUBLIC_URL}
ADMIN_URL=${STEWARD_ADMIN_URL:-$INTERNAL_URL}
PASSWORD_FILE=${STEWARD_PASSWORD_FILE:?set STEWARD_PASSWORD_FILE to a file holding steward user password}

password() {
    [ -r "$1" ] || { echo "register-steward: cannot read password file $1" >&2; exit 1; }
    # First line, without its newline.
    head -n 1 "$1" | tr -d '\n'
}

exists() { # kind name [args]: does it exist already? (makes the script safe to run again)
    kind=$1; shift
    $OPENSTACK "$kind" show "$@" -f value -c id >/dev/null 2>&1
}

# --- service and endpoints -----------------------------------------------------------------
if ! $OPENSTACK service show scheduler-steward -f value -c id >/dev/null 2>&1; then
    $OPENSTACK service create --name steward \
        --description "Nova Steward: steal-aware scheduling, rebalancing and inventory repair" \
        scheduler-steward
fi
for iface in public internal admin; do
    case $iface in
        public) url=$PUBLIC_URL ;;
        internal) url=$INTERNAL_URL ;;
        admin) url=$ADMIN_URL ;;
    esac
    if [ -z "$($OPENSTACK endpoint list --service scheduler-steward --interface "$iface" \
               --region "$REGION" -f value -c ID)" ]; then
        $OPENSTACK endpoint create --region "$REGION" scheduler-steward "$iface" "$url"
    fi
done

# --- roles -----------------------------------------------------------------------------------
exists role steward_reader || $OPENSTACK role create steward_reader
$OPENSTACK implied role list -f value -c "Prior Role Name" -c "Implied Role Name" \
    | grep -qx "steward_reader reader" \
    || $OPENSTACK implied role create steward_reader --implied-role reader

# --- steward's service user: read only ----------------------------------------------------
if ! exists user steward --domain "$DOMAIN"; then
    $OPENSTACK user create --domain "$DOMAIN" --password "$(password "$PASSWORD_FILE")" \
        --description "Nova Steward service user (read only)" steward
fi
$OPENSTACK role add --user steward --user-domain "$DOMAIN" \
    --project "$PROJECT" --project-domain "$DOMAIN" steward_reader

# --- opt-in: the rebalancer's live migrations ------------------------------------------------
if [ "${STEWARD_MIGRATOR:-0}" = 1 ]; then
    exists role steward_migrator || $OPENSTACK role create steward_migrator
    $OPENSTACK role add --user steward --user-domain "$DOMAIN" \
        --project "$PROJECT" --project-domain "$DOMAIN" steward_migrator
fi

# --- opt-in: validating callers' Keystone tokens ([auth] strategy = "keystone") -------------
if [ "${STEWARD_VALIDATE_TOKENS:-0}" = 1 ]; then
    $OPENSTACK role add --user steward --user-domain "$DOMAIN" \
        --project "$PROJECT" --project-domain "$DOMAIN" service
fi

# --- opt-in: the inventory repair's separate admin user --------------------------------------
if [ "${STEWARD_REPAIR_USER:-0}" = 1 ]; then
    REPAIR_PASSWORD_FILE=${STEWARD_REPAIR_PASSWORD_FILE:?set STEWARD_REPAIR_PASSWORD_FILE}
    if ! exists user steward-repair --domain "$DOMAIN"; then
        $OPENSTACK user create --domain "$DOMAIN" --password "$(password "$REPAIR_PASSWORD_FILE")" \
            --description "Nova Steward inventory repair (admin; disable between runs)" steward-repair
    fi
    $OPENSTACK role add --user steward-repair --user-domain "$DOMAIN" \
        --project "$PROJECT" --project-domain "$DOMAIN" admin
fi

echo "steward registered: service scheduler-steward, endpoints in $REGION, user steward (steward_reader)"
