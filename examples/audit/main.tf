# Storefront stack: instances, launch templates and the account default for us-east-1.

variable "imds_tokens" {
  type    = string
  default = "optional"
}

resource "aws_instance" "web" {
  ami           = "ami-0c02fb55956c7d316"
  instance_type = "t3.medium"
  subnet_id     = "subnet-0b7e1c2d3f4a5b6c7"

  tags = {
    Name = "web-tf"
    team = "storefront"
  }
}

resource "aws_instance" "api" {
  ami           = "ami-0c02fb55956c7d316"
  instance_type = "t3.medium"

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
}

resource "aws_instance" "worker" {
  ami           = "ami-0c02fb55956c7d316"
  instance_type = "c6i.large"

  metadata_options {
    http_tokens = var.imds_tokens
  }
}

resource "aws_launch_template" "app" {
  name_prefix   = "app-"
  image_id      = "ami-0c02fb55956c7d316"
  instance_type = "t3.medium"

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "optional"
    http_put_response_hop_limit = 3
  }
}

resource "aws_launch_template" "eks_nodes" {
  name_prefix = "eks-nodes-"
  image_id    = "ami-0e2d4f6a8c0b1d3e5"

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }

  tags = {
    "kubernetes.io/cluster/prod" = "owned"
  }
}

resource "aws_launch_configuration" "legacy" {
  name_prefix   = "legacy-"
  image_id      = "ami-0c02fb55956c7d316"
  instance_type = "t3.small"
}

resource "aws_autoscaling_group" "app" {
  name                = "app-asg"
  min_size            = 2
  max_size            = 6
  vpc_zone_identifier = ["subnet-0b7e1c2d3f4a5b6c7"]

  launch_template {
    id      = aws_launch_template.app.id
    version = "$Latest"
  }
}

resource "aws_ec2_instance_metadata_defaults" "this" {
  http_tokens                 = "optional"
  http_put_response_hop_limit = 1
}
