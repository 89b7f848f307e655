# Submit a complex deployment task requiring multiple agents
deployment_task = {
    "name": "Full Stack Application Deployment",
    "description": "Deploy a complete web application with monitoring",
    "type": "deployment",
    "priority": "high",
    "requirements": [
        "infrastructure_management",
        "deployment_automation",
        "monitoring_setup",
        "security_configuration"
    ],
    "coordination_pattern": "pipeline",
    "payload": {
        "application": "web-app",
        "environment": "production",
        "monitoring": True,
        "ssl_enabled": True
    },
    "constraints": {
        "max_agents": 6,
        "estimated_duration": 3600,  # 1 hour
        "required_approvals": ["security-review", "infrastructure-review"]
    }
}

response = requests.post("http://localhost:8000/tasks", json=deployment_task)
