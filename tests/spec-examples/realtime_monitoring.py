import asyncio
import websockets
import json

async def monitor_system():
    uri = "ws://localhost:8000/ws"
    
    async with websockets.connect(uri) as websocket:
        async for message in websocket:
            data = json.loads(message)
            
            if data["type"] == "system_status":
                print(f"System Health: {data['data']['system_health']:.1%}")
                print(f"Active Tasks: {data['data']['active_tasks']}")
            
            elif data["type"] == "task_completed":
                print(f"Task completed: {data['task_name']}")
            
            elif data["type"] == "alert":
                print(f"Alert: {data['message']} (Severity: {data['severity']})")

# Run the monitoring client
asyncio.run(monitor_system())
