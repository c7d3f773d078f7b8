// The kit's TCP proxy, against an echo server: latency delays each way and
// keeps the order; frozen, nothing passes and what was held arrives after
// restore(); down() cuts the connection.

import {expect} from '@loopback/testlab';
import net from 'net';
import {mono, TcpProxy, waitFor} from '../../cluster-kit';

describe('TcpProxy (the chaos runs and outage tests)', () => {
  let echo: net.Server;
  let proxy: TcpProxy;
  let client: net.Socket;
  let received = '';

  beforeEach(async () => {
    echo = net.createServer(socket => socket.pipe(socket));
    await new Promise<void>(resolve => echo.listen(0, '127.0.0.1', resolve));
    proxy = new TcpProxy({host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port});
    await proxy.start();
    received = '';
    client = net.connect(proxy.port, '127.0.0.1');
    client.on('data', chunk => (received += chunk.toString()));
    client.on('error', () => {});
    await new Promise(resolve => client.once('connect', resolve));
  });

  afterEach(async () => {
    client.destroy();
    await proxy.close();
    await new Promise(resolve => echo.close(resolve));
  });

  it('delays every chunk by its latency each way, in order', async () => {
    proxy.latency = 60;
    const sent = mono();
    for (const part of ['a', 'b', 'c']) client.write(part);
    await waitFor('the echo', () => received === 'abc', 2000, 5);
    expect(mono() - sent).to.be.aboveOrEqual(115);
    proxy.latency = 0;
    const again = mono();
    client.write('d');
    await waitFor('the echo', () => received === 'abcd', 2000, 5);
    expect(mono() - again).to.be.below(50);
  });

  it('forwards nothing while frozen, and what it held once restored', async () => {
    proxy.freeze();
    client.write('held');
    await new Promise(resolve => setTimeout(resolve, 150));
    expect(received).to.equal('');
    proxy.restore();
    await waitFor('the late echo', () => received === 'held', 2000, 5);
  });

  it('cuts the connection when down', async () => {
    expect(proxy.open).to.equal(1);
    const closed = new Promise(resolve => client.once('close', resolve));
    proxy.down();
    await closed;
    expect(proxy.open).to.equal(0);
  });
});
