# gatrec on Google Cloud: data and artefact buckets, the image registry, PostgreSQL on a private IP,
# the MLflow tracking server and the Bento service on Cloud Run, and one service account per role.
# Names match gatrec/cloud/settings.py (gatrec-train, gatrec-serve, the "gatrec" repository, PROJECT-gatrec-*).

locals {
  prefix = "gatrec"
  labels = { app = "gatrec", managed-by = "terraform" }
  apis = [
    "aiplatform.googleapis.com", "artifactregistry.googleapis.com", "compute.googleapis.com",
    "iam.googleapis.com", "iamcredentials.googleapis.com", "run.googleapis.com",
    "secretmanager.googleapis.com", "servicenetworking.googleapis.com", "sqladmin.googleapis.com",
    "storage.googleapis.com", "sts.googleapis.com", "cloudkms.googleapis.com",
  ]
  buckets = {
    data      = "${var.project_id}-gatrec-data"
    artifacts = "${var.project_id}-gatrec-artifacts"
  }
}

resource "google_project_service" "apis" {
  for_each           = toset(local.apis)
  service            = each.value
  disable_on_destroy = false
}

# ------------------------------------------------------------------------------- service accounts

resource "google_service_account" "train" {
  account_id   = "${local.prefix}-train"
  display_name = "gatrec training jobs (Vertex AI)"
}

resource "google_service_account" "serve" {
  account_id   = "${local.prefix}-serve"
  display_name = "gatrec Bento service (Cloud Run)"
}

resource "google_service_account" "mlflow" {
  account_id   = "${local.prefix}-mlflow"
  display_name = "gatrec MLflow tracking server (Cloud Run)"
}

resource "google_service_account" "ci" {
  account_id   = "${local.prefix}-ci"
  display_name = "gatrec CI (GitHub Actions via Workload Identity Federation)"
}

# Training jobs write logs; nothing else project-wide. Every other grant is on one resource.
resource "google_project_iam_member" "train_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.train.member
}

resource "google_project_iam_member" "train_sql" {
  project = var.project_id
  role    = "roles/cloudsql.client" # Optuna storage of sweeps
  member  = google_service_account.train.member
}

resource "google_project_iam_member" "mlflow_sql" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.mlflow.member
}

# ------------------------------------------------------------------------------------- encryption

resource "google_kms_key_ring" "gatrec" {
  name       = local.prefix
  location   = var.region
  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "storage" {
  name            = "${local.prefix}-storage"
  key_ring        = google_kms_key_ring.gatrec.id
  rotation_period = "7776000s" # 90 days
  lifecycle {
    prevent_destroy = true # every object and image encrypted with it would be lost
  }
}

data "google_project" "this" {}

# Artifact Registry encrypts the images with the same key.
resource "google_kms_crypto_key_iam_member" "registry" {
  crypto_key_id = google_kms_crypto_key.storage.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
}

data "google_storage_project_service_account" "gcs" {}

resource "google_kms_crypto_key_iam_member" "gcs" {
  crypto_key_id = google_kms_crypto_key.storage.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# ---------------------------------------------------------------------------------------- storage

resource "google_storage_bucket" "logs" {
  #checkov:skip=CKV_GCP_62:this is the access-log bucket itself; logging it into itself would log its own log writes
  name                        = "${var.project_id}-gatrec-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = local.labels
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "buckets" {
  for_each                    = local.buckets
  name                        = each.value
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = merge(local.labels, { role = each.key })

  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }
  logging {
    log_bucket = google_storage_bucket.logs.name
  }
  # Temp objects of interrupted atomic uploads (gatrec/cloud/storage.py writes under .gatrec-tmp/).
  lifecycle_rule {
    condition {
      age            = 1
      matches_prefix = [".gatrec-tmp/"]
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.artifact_noncurrent_days
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.gcs]
}

# Training reads and writes both buckets; the tracking server writes model artefacts; serving reads none
# (the Bento image carries its model).
resource "google_storage_bucket_iam_member" "train" {
  for_each = google_storage_bucket.buckets
  bucket   = each.value.name
  role     = "roles/storage.objectAdmin"
  member   = google_service_account.train.member
}

resource "google_storage_bucket_iam_member" "mlflow_artifacts" {
  bucket = google_storage_bucket.buckets["artifacts"].name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.mlflow.member
}

# ------------------------------------------------------------------------------ Artifact Registry

resource "google_artifact_registry_repository" "images" {
  repository_id = local.prefix
  location      = var.region
  format        = "DOCKER"
  description   = "gatrec training image and Bento images"
  labels        = local.labels
  kms_key_name  = google_kms_crypto_key.storage.id
  docker_config {
    immutable_tags = false # train:latest moves; Bento tags are versions
  }
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }
  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.registry]
}

resource "google_artifact_registry_repository_iam_member" "ci_push" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.ci.member
}

resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each = {
    train = google_service_account.train.member
    serve = google_service_account.serve.member
  }
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}

# ----------------------------------------------------------------- network and Cloud SQL (private IP)

resource "google_compute_network" "vpc" {
  name                    = local.prefix
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "main" {
  name                     = "${local.prefix}-${var.region}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = "10.10.0.0/20"
  private_ip_google_access = true
  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing reaches the network from outside; Cloud Run's and Vertex's traffic to PostgreSQL stays inside it.
resource "google_compute_firewall" "deny_ingress" {
  name          = "${local.prefix}-deny-ingress"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]
  deny {
    protocol = "all"
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "allow_internal" {
  name          = "${local.prefix}-allow-internal"
  network       = google_compute_network.vpc.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = [google_compute_subnetwork.main.ip_cidr_range]
  allow {
    protocol = "tcp"
    ports    = ["5432"]
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_global_address" "sql_peering" {
  name          = "${local.prefix}-sql-peering"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 16
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "sql" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.sql_peering.name]
}

resource "google_sql_database_instance" "postgres" {
  #checkov:skip=CKV_GCP_6:TLS is required (ssl_mode ENCRYPTED_ONLY); client certificates are not, since Vertex workers connect over the private IP without the Cloud SQL connector, with the password from Secret Manager
  name                = "${local.prefix}-pg"
  region              = var.region
  database_version    = "POSTGRES_18"
  deletion_protection = var.deletion_protection
  settings {
    tier              = var.db_tier
    availability_type = "ZONAL"
    user_labels       = local.labels
    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.vpc.id
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "ENCRYPTED_ONLY"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
  }
  depends_on = [google_service_networking_connection.sql]
}

resource "google_sql_database" "mlflow" {
  name     = "mlflow"
  instance = google_sql_database_instance.postgres.name
}

resource "google_sql_database" "optuna" {
  name     = "optuna"
  instance = google_sql_database_instance.postgres.name
}

resource "random_password" "db" {
  length  = 32
  special = false # it travels inside a database URL
}

resource "google_sql_user" "gatrec" {
  name     = local.prefix
  instance = google_sql_database_instance.postgres.name
  password = random_password.db.result
}

# ---------------------------------------------------------------------------------- Secret Manager

resource "random_password" "webhook" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret" "secrets" {
  for_each  = toset(["db-password", "webhook-secret"])
  secret_id = "${local.prefix}-${each.value}"
  labels    = local.labels
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "db_password" {
  secret      = google_secret_manager_secret.secrets["db-password"].id
  secret_data = random_password.db.result
}

resource "google_secret_manager_secret_version" "webhook_secret" {
  secret      = google_secret_manager_secret.secrets["webhook-secret"].id
  secret_data = random_password.webhook.result
}

resource "google_secret_manager_secret_iam_member" "access" {
  for_each = {
    mlflow-db      = ["db-password", google_service_account.mlflow.member]
    mlflow-webhook = ["webhook-secret", google_service_account.mlflow.member]
    train-db       = ["db-password", google_service_account.train.member]
  }
  secret_id = google_secret_manager_secret.secrets[each.value[0]].id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value[1]
}

# ------------------------------------------------------------------------ MLflow on Cloud Run (IAM)

resource "google_cloud_run_v2_service" "mlflow" {
  name                = "${local.prefix}-mlflow"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL" # reachable from Vertex jobs and laptops; IAM decides who
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    service_account = google_service_account.mlflow.email
    scaling {
      min_instance_count = 0
      max_instance_count = 2
    }
    vpc_access {
      network_interfaces {
        network    = google_compute_network.vpc.id
        subnetwork = google_compute_subnetwork.main.id
      }
      egress = "PRIVATE_RANGES_ONLY"
    }
    containers {
      image = var.mlflow_image
      # Cloud Run expands $(VAR) in args from the container's environment.
      args = [
        "mlflow", "server", "--host", "0.0.0.0", "--port", "5000",
        "--backend-store-uri",
        "postgresql://${google_sql_user.gatrec.name}:$(DB_PASSWORD)@${google_sql_database_instance.postgres.private_ip_address}:5432/${google_sql_database.mlflow.name}?sslmode=require",
        "--artifacts-destination", "gs://${google_storage_bucket.buckets["artifacts"].name}/mlflow",
        "--serve-artifacts",
      ]
      ports {
        container_port = 5000
      }
      env {
        name = "DB_PASSWORD"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.secrets["db-password"].secret_id
            version = "latest"
          }
        }
      }
      env {
        name = "GATREC_WEBHOOK_SECRET"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.secrets["webhook-secret"].secret_id
            version = "latest"
          }
        }
      }
      resources {
        limits = { cpu = "1", memory = "2Gi" }
      }
      startup_probe {
        http_get {
          path = "/health"
        }
        period_seconds    = 10
        failure_threshold = 30
      }
    }
  }
  depends_on = [google_secret_manager_secret_iam_member.access, google_secret_manager_secret_version.db_password]
}

resource "google_cloud_run_v2_service_iam_member" "mlflow_invokers" {
  for_each = toset(concat([google_service_account.train.member, google_service_account.ci.member],
  var.mlflow_invokers))
  name     = google_cloud_run_v2_service.mlflow.name
  location = var.region
  role     = "roles/run.invoker"
  member   = each.value
}

# -------------------------------------------------------------------------- the Bento on Cloud Run

resource "google_cloud_run_v2_service" "bento" {
  name                = local.prefix
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  labels              = local.labels

  template {
    service_account                  = google_service_account.serve.email
    max_instance_request_concurrency = 32
    scaling {
      min_instance_count = 0
      max_instance_count = 3
    }
    containers {
      image = var.bento_image
      ports {
        name           = "http1"
        container_port = 3000
      }
      resources {
        limits            = { cpu = "2", memory = "4Gi" }
        startup_cpu_boost = true
      }
      startup_probe {
        http_get {
          path = "/readyz"
          port = 3000
        }
        period_seconds    = 10
        timeout_seconds   = 5
        failure_threshold = 30
      }
      liveness_probe {
        http_get {
          path = "/livez"
          port = 3000
        }
        period_seconds    = 10
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }
  }
  lifecycle {
    # `gatrec cloud deploy` rolls out new Bento images; Terraform owns the rest of the service.
    ignore_changes = [template[0].containers[0].image, client, client_version]
  }
}

resource "google_cloud_run_v2_service_iam_member" "bento_invokers" {
  for_each = toset(var.bento_invokers)
  name     = google_cloud_run_v2_service.bento.name
  location = var.region
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_v2_service_iam_member" "bento_public" {
  count    = var.allow_unauthenticated_bento ? 1 : 0
  name     = google_cloud_run_v2_service.bento.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# ----------------------------------------------------- CI: GitHub Actions through Workload Identity

resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = "${local.prefix}-github"
  display_name              = "GitHub Actions"
  depends_on                = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub OIDC"
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  # Only this repository's main branch can exchange its tokens (pull requests and forks cannot push images).
  attribute_condition = "assertion.sub == 'repo:${var.github_owner}/${var.github_repo}:ref:refs/heads/main' && assertion.repository == '${var.github_owner}/${var.github_repo}'"
  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "ci_wif" {
  service_account_id = google_service_account.ci.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_owner}/${var.github_repo}"
}
