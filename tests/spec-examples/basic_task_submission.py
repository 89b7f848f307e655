import requests

# Submit a code generation task
task_data = {
    "name": "Generate Authentication Module",
    "description": "Create a secure authentication system with JWT tokens",
    "type": "code_generation",
    "priority": "high",
    "requirements": ["code_generation", "security_implementation"],
    "coordination_pattern": "collaborative",
    "payload": {
        "language": "python",
        "framework": "fastapi",
        "features": ["login", "register", "password_reset"]
    }
}

response = requests.post("http://localhost:8000/tasks", json=task_data)
task_response = response.json()
session_id = task_response["session_id"]

print(f"Task submitted successfully. Session ID: {session_id}")
