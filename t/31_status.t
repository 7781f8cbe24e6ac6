# SetHandler clusterstorage-status: HTML, JSON, Prometheus and ?path=, with
# counters that move as requests are made.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for node_url);
use CSNode;
use JSON::PP ();

my $n = CSNode->new('s31', replicas => 2)->start;
my $st = $n->url . '/cluster-status';

my $r = req(GET => $st);
is $r->code, 200, 'HTML status is 200';
like $r->header('Content-Type'), qr{^text/html}, 'as HTML';
like $r->content, qr{<h1>Node s31</h1>}, 'names this node';
like $r->content, qr{<td>s31</td><td>\Q${\ $n->url}\E</td><td>up</td>}, 'lists this node as up';
like $r->content, qr{<td>n1</td>}, 'lists the other nodes';
like $r->content, qr{Replication queue: \d+ jobs}, 'shows the replication backlog';

my $j0 = JSON::PP::decode_json(req(GET => "$st?format=json")->content);
is $j0->{node}, 's31', 'JSON names the node';
ok $j0->{registry_reachable}, 'JSON: the registry is reachable';
ok((grep { $_->{name} eq 'n1' && $_->{state} eq 'up' } @{ $j0->{nodes} }),
   'JSON lists n1 as up');
ok exists $j0->{queue}{jobs}, 'JSON has the queue depth';
like $j0->{repair_backlog}, qr/^-?\d+$/,
    "JSON has the repair backlog (-1 before the repair's first round)";
ok exists $j0->{cache}{hits}, 'JSON has the cache counters';

# Make things happen: a PUT, hits, a 404, a fetch.
my $key = '/files/' . unique_key('status') . '.txt';
is req(PUT => $n->url . $key, "counted\n")->code, 201, 'PUT';
req(GET => $n->url . $key) for 1 .. 3;
is req(GET => $n->url . '/files/' . unique_key('none'))->code, 404, 'a 404';
my $k2 = '/files/' . unique_key('status-fetch') . '.txt';
is req(PUT => node_url() . $k2, "fetched\n")->code, 201, 'PUT on n1';
is req(GET => $n->url . $k2)->content, "fetched\n", 'fetched by s31';

my $j1 = JSON::PP::decode_json(req(GET => "$st?format=json")->content);
is $j1->{counters}{puts} - $j0->{counters}{puts}, 1, 'puts counted';
ok $j1->{counters}{hits} - $j0->{counters}{hits} >= 3, 'hits counted';
is $j1->{counters}{not_found} - $j0->{counters}{not_found}, 1, '404 counted';
is $j1->{counters}{peer_fetches} - $j0->{counters}{peer_fetches}, 1, 'fetch counted';
ok $j1->{counters}{fetch_bytes} - $j0->{counters}{fetch_bytes} >= 8, 'fetched bytes counted';

# Replication of the PUT (replicas 2) shows up too.
ok wait_for(10, sub {
    my $j = JSON::PP::decode_json(req(GET => "$st?format=json")->content);
    $j->{counters}{replications_done} > $j0->{counters}{replications_done} }),
    'the replication is counted';

# Prometheus text format.
$r = req(GET => "$st?format=prometheus");
is $r->code, 200, 'Prometheus status is 200';
like $r->header('Content-Type'), qr{^text/plain}, 'as text';
like $r->content, qr/^# TYPE clusterstorage_hits_total counter$/m, 'TYPE lines';
like $r->content, qr/^clusterstorage_puts_total\{node="s31"\} \d+$/m, 'counter with node label';
like $r->content, qr/^clusterstorage_fetch_failures_by_cause_total\{node="s31",cause="connect"\} \d+$/m,
    'fetch failures with a cause label';
like $r->content, qr/^clusterstorage_node_up\{node="s31",peer="n1"\} 1$/m, 'membership gauge';
like $r->content, qr/^clusterstorage_repair_backlog\{node="s31"\} -?\d+$/m, 'repair backlog gauge';
unlike $r->content, qr/^(?!#)\S+ \S+ \S+$/m, 'no malformed sample lines';

# ?path= gives the key's registry entry with its holders.
$r = req(GET => "$st?path=$key");
is $r->code, 200, '?path= is 200';
my $e = JSON::PP::decode_json($r->content);
is $e->{key}, $key, 'the key';
ok $e->{exists}, 'exists';
is $e->{size}, 8, 'size';
like $e->{sha256}, qr/^[0-9a-f]{64}$/, 'sha256';
ok((grep { $_->{node} eq 's31' && $_->{alive} } @{ $e->{holders} }), 'holders with liveness');
$e = JSON::PP::decode_json(req(GET => "$st?path=/files/never-stored-31")->content);
ok !$e->{exists}, 'a key never stored: exists false';

is req(POST => $st)->code, 405, 'POST to the status page is 405';

$n->stop;
done_testing;
