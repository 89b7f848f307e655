# Get performance analytics for the last 24 hours
from datetime import datetime, timedelta

start_date = datetime.now() - timedelta(hours=24)
end_date = datetime.now()

analytics_params = {
    "start_date": start_date.isoformat(),
    "end_date": end_date.isoformat()
}

response = requests.get(
    "http://localhost:8000/analytics/performance",
    params=analytics_params
)

analytics = response.json()

print(f"Average Success Rate: {analytics['average_success_rate']:.1%}")
print(f"Average Response Time: {analytics['average_response_time']:.2f}s")

# Analyze individual agent performance
for agent_id, performance in analytics["agent_performance"].items():
    print(f"{agent_id}: {performance['success_rate']:.1%} success rate")
